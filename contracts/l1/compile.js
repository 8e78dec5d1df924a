// Compiles the L1 exchange contracts with solcjs into contracts/l1/out/.
//
// Usage (from the repository root):
//   npm install --prefix $HOME/.cache/tandem/solc solc@0.8.28
//   NODE_PATH=$HOME/.cache/tandem/solc/node_modules node contracts/l1/compile.js
//
// Settings: solc 0.8.28, optimizer on (200 runs), evmVersion cancun, metadata bytecodeHash none.
// Outputs (hex without 0x, trailing newline; ABIs as JSON):
//   <Name>.bin          creation bytecode: L1Vault, TestUSD, L1Probe
//   <Name>.runtime.bin  deployed bytecode (placed in genesis): L1Write, TestUSD
//   <Name>.abi.json     ABI: L1Write, L1Vault, L1Probe, TestUSD
// It also checks that L1Write has no storage variables, no immutables, no SLOAD/SSTORE and no
// constructor logic (its storage belongs to the engine), and that TestUSD's storage layout is
// the documented one (slot 0 balanceOf, 1 allowance, 2 totalSupply).
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const EXPECTED_VERSION = '0.8.28';
if (!solc.version().startsWith(EXPECTED_VERSION)) {
  console.error(`expected solc ${EXPECTED_VERSION}, got ${solc.version()}`);
  process.exit(1);
}

const files = [
  'IL1Core.sol',
  'IL1Write.sol',
  'SafeToken.sol',
  'L1Read.sol',
  'L1Write.sol',
  'L1Vault.sol',
  'TestUSD.sol',
  'L1Probe.sol',
];
const sources = {};
for (const f of files) sources[f] = { content: fs.readFileSync(path.join(__dirname, f), 'utf8') };

const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none' },
    outputSelection: {
      '*': {
        '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.deployedBytecode.immutableReferences', 'storageLayout'],
      },
    },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of output.errors || []) {
  if (e.severity === 'error') failed = true;
  // The transient-storage (EIP-1153) warning of L1Write's reentrancy lock is expected.
  if (e.severity === 'error' || !/transient storage/i.test(e.message)) console.error(e.formattedMessage);
}
if (failed) process.exit(1);

const contract = (name) => output.contracts[`${name}.sol`][name];
const outDir = path.join(__dirname, 'out');
fs.mkdirSync(outDir, { recursive: true });
const written = [];
const write = (file, text) => {
  fs.writeFileSync(path.join(outDir, file), text);
  written.push(`${file} (${text.length} chars)`);
};

function fail(msg) {
  console.error(`check failed: ${msg}`);
  process.exit(1);
}

// Opcodes of `hex` (code without the metadata trailer), skipping PUSH data.
function opcodes(hex) {
  const code = Buffer.from(hex, 'hex');
  // Strip the CBOR metadata: its length is the last two bytes.
  const metaLen = code.readUInt16BE(code.length - 2) + 2;
  const end = code.length - metaLen;
  const ops = [];
  for (let i = 0; i < end; i++) {
    const op = code[i];
    ops.push(op);
    if (op >= 0x60 && op <= 0x7f) i += op - 0x5f;
  }
  return ops;
}

// ---- L1Write checks ----
{
  const c = contract('L1Write');
  if (c.storageLayout.storage.length !== 0) fail('L1Write declares storage variables');
  if (Object.keys(c.evm.deployedBytecode.immutableReferences || {}).length !== 0) fail('L1Write has immutables');
  const runtime = c.evm.deployedBytecode.object;
  const ops = opcodes(runtime);
  if (ops.includes(0x54) || ops.includes(0x55)) fail('L1Write runtime code contains SLOAD/SSTORE');
  const creation = c.evm.bytecode.object;
  const at = creation.indexOf(runtime);
  if (at < 0 || at + runtime.length !== creation.length) fail('L1Write creation code is not prefix + runtime');
  const prefix = opcodes(creation.slice(0, at) + '0000'); // no metadata in the prefix
  if (prefix.includes(0x54) || prefix.includes(0x55) || prefix.includes(0xf1) || at / 2 > 32)
    fail(`L1Write has constructor logic (init prefix of ${at / 2} bytes)`);
}

// ---- TestUSD storage layout ----
{
  const layout = contract('TestUSD').storageLayout.storage.map((s) => `${s.slot}:${s.offset}:${s.label}`);
  const expected = ['0:0:balanceOf', '1:0:allowance', '2:0:totalSupply'];
  if (JSON.stringify(layout) !== JSON.stringify(expected))
    fail(`TestUSD storage layout ${JSON.stringify(layout)}, expected ${JSON.stringify(expected)}`);
}

for (const name of ['L1Vault', 'TestUSD', 'L1Probe']) write(`${name}.bin`, contract(name).evm.bytecode.object + '\n');
for (const name of ['L1Write', 'TestUSD'])
  write(`${name}.runtime.bin`, contract(name).evm.deployedBytecode.object + '\n');
for (const name of ['L1Write', 'L1Vault', 'L1Probe', 'TestUSD'])
  write(`${name}.abi.json`, JSON.stringify(contract(name).abi, null, 2) + '\n');

console.log(`solc ${solc.version()}:`);
for (const name of ['L1Write', 'L1Vault', 'TestUSD', 'L1Probe']) {
  const c = contract(name);
  console.log(`  ${name}: creation ${c.evm.bytecode.object.length / 2} bytes, runtime ${c.evm.deployedBytecode.object.length / 2} bytes`);
}
console.log(`wrote ${written.join(', ')} into ${path.relative(process.cwd(), outDir) || '.'}`);
