//! A size budget for what a `debug_trace*` tracer records.
//!
//! A tracer keeps its whole record in memory until the run ends, and only then is the answer
//! checked against `--rpc.max-response-size`. The opcode logger copies the stack (and, if
//! asked, the memory and return data) at every instruction: a loop over a 64 KiB memory records
//! gigabytes per second, well inside the time and gas limits. [`TraceBudget`] estimates the
//! JSON size of the record as it grows and halts the run when the estimate passes the response
//! limit, so the request fails with a clear error instead of exhausting the node's memory.

use alloy_rpc_types_trace::geth::{
    GethDebugBuiltInTracerType, GethDebugTracerType, GethDebugTracingOptions,
};
use revm::{
    inspector::Inspector,
    interpreter::{
        CallInputs, CallOutcome, CreateInputs, CreateOutcome, InstructionResult, Interpreter,
        InterpreterTypes,
        interpreter_types::{MemoryTr, ReturnData, StackTr},
    },
};

/// JSON bytes of one opcode-logger step without its stack, memory or return data (pc, op, gas,
/// gasCost, depth, and the keys).
const STEP_BYTES: u64 = 120;
/// JSON bytes of one stack item: up to 64 hex digits, `0x`, quotes and a comma.
const STACK_ITEM_BYTES: u64 = 69;
/// JSON bytes of one call frame without its input and output.
const FRAME_BYTES: u64 = 300;

/// What one recorded instruction of the opcode logger holds.
#[derive(Debug, Clone, Copy)]
struct StepRecord {
    stack: bool,
    memory: bool,
    return_data: bool,
}

/// Halts a traced run once the estimated size of its record passes a limit.
#[derive(Debug, Clone)]
pub struct TraceBudget {
    limit: u64,
    used: u64,
    steps: Option<StepRecord>,
    frames: bool,
}

impl TraceBudget {
    /// A budget of `limit` bytes for the tracer `opts` selects.
    pub fn new(opts: &GethDebugTracingOptions, limit: u64) -> Self {
        let (steps, frames) = match &opts.tracer {
            None => {
                let config = &opts.config;
                let record = StepRecord {
                    stack: !config.disable_stack.unwrap_or(false),
                    memory: config.enable_memory.unwrap_or(false)
                        && !config.disable_memory.unwrap_or(false),
                    return_data: config.enable_return_data.unwrap_or(false)
                        && !config.disable_return_data.unwrap_or(false),
                };
                (Some(record), true)
            }
            // The 4byte, no-op and state-gas tracers record a few bytes per call or nothing; the
            // prestate tracer records what the run touched, which gas bounds.
            Some(GethDebugTracerType::BuiltInTracer(
                GethDebugBuiltInTracerType::FourByteTracer
                | GethDebugBuiltInTracerType::NoopTracer
                | GethDebugBuiltInTracerType::PreStateTracer,
            )) => (None, false),
            // Call, flat-call, mux and the others record every frame with its input and output.
            Some(_) => (None, true),
        };
        Self { limit, used: 0, steps, frames }
    }

    /// Whether the record passed the limit and the run was halted: its result is meaningless.
    pub fn exceeded(&self) -> bool {
        self.used > self.limit
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn charge(&mut self, bytes: usize) {
        self.used = self.used.saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// A frame opens with `data` bytes of input or init code (hex doubles them).
    fn charge_frame(&mut self, data: usize) {
        if self.frames {
            self.charge(data.saturating_mul(2));
            self.used = self.used.saturating_add(FRAME_BYTES);
        }
    }
}

impl<CTX, INTR: InterpreterTypes> Inspector<CTX, INTR> for TraceBudget {
    fn step(&mut self, interp: &mut Interpreter<INTR>, _context: &mut CTX) {
        if let Some(record) = self.steps {
            let mut bytes = STEP_BYTES;
            if record.stack {
                let items = u64::try_from(interp.stack.len()).unwrap_or(u64::MAX);
                bytes = bytes.saturating_add(items.saturating_mul(STACK_ITEM_BYTES));
            }
            if record.memory {
                // 32-byte words as 64 hex digits, quoted, comma-separated: about 2.1 per byte.
                let size = u64::try_from(interp.memory.size()).unwrap_or(u64::MAX);
                bytes = bytes.saturating_add(size.saturating_mul(21) / 10);
            }
            if record.return_data {
                let size = u64::try_from(interp.return_data.buffer().len()).unwrap_or(u64::MAX);
                bytes = bytes.saturating_add(size.saturating_mul(2));
            }
            self.used = self.used.saturating_add(bytes);
        }
        if self.exceeded() {
            // Every frame still running stops at its next instruction; the caller sees
            // `exceeded()` and reports the size instead of the halt.
            interp.halt(InstructionResult::OutOfGas);
        }
    }

    fn call(&mut self, _context: &mut CTX, inputs: &mut CallInputs) -> Option<CallOutcome> {
        self.charge_frame(inputs.input.len());
        None
    }

    fn call_end(&mut self, _context: &mut CTX, _inputs: &CallInputs, outcome: &mut CallOutcome) {
        if self.frames {
            self.charge(outcome.result.output.len().saturating_mul(2));
        }
    }

    fn create(&mut self, _context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        self.charge_frame(inputs.init_code().len());
        None
    }
}
