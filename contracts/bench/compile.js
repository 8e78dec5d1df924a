// Compiles BenchToken.sol into BenchToken.bin (creation bytecode, hex, no 0x) with solcjs.
// Usage: npm install --prefix /tmp/solc solc@0.8.28 && NODE_PATH=/tmp/solc/node_modules node contracts/bench/compile.js
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const source = fs.readFileSync(path.join(__dirname, 'BenchToken.sol'), 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'BenchToken.sol': { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const bin = output.contracts['BenchToken.sol'].BenchToken.evm.bytecode.object;
fs.writeFileSync(path.join(__dirname, 'BenchToken.bin'), bin + '\n');
console.log(`solc ${solc.version()}: BenchToken.bin, ${bin.length / 2} bytes`);
