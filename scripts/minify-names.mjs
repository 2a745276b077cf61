// Renames wasm-bindgen's import and export names in the JS glue to the short ones wasm-opt
// gave the module (`--minify-imports-and-exports-and-modules`, whose JSON map is the input).
//
// The generated names carry a hash each (`__wbg_addEventListener_847fd86b8c33ec43`), which
// gzip cannot compress; they appear in the module and in the glue. Fails the build if a name
// is left over, so a wasm-bindgen upgrade that changes the glue's shape cannot ship a module
// and glue that disagree.
//
// Usage: node scripts/minify-names.mjs GLUE.js MAP.json MODULE.wasm
import { readFileSync, writeFileSync } from "node:fs";

const [gluePath, mapPath, wasmPath] = process.argv.slice(2);
if (!gluePath || !mapPath || !wasmPath) {
  console.error("usage: minify-names.mjs GLUE.js MAP.json MODULE.wasm");
  process.exit(2);
}
const fail = (msg) => {
  console.error(`minify-names: ${msg}`);
  process.exit(1);
};

let glue = readFileSync(gluePath, "utf8");
const map = JSON.parse(readFileSync(mapPath, "utf8"));
const module = new WebAssembly.Module(readFileSync(wasmPath));
const modules = new Set(WebAssembly.Module.imports(module).map((i) => i.module));
if (modules.size !== 1) fail(`expected one import module, found ${[...modules].join(", ")}`);
const [newModule] = modules;
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// Every import comes from the one module of the glue's import object.
const oldModules = new Set(map.imports.map(([m]) => m));
if (oldModules.size !== 1) fail(`expected one module in the map, found ${[...oldModules].join(", ")}`);
const [oldModule] = oldModules;
const moduleKey = new RegExp(`"${escape(oldModule)}": import0\\b`);
if (!moduleKey.test(glue)) fail(`the glue does not map "${oldModule}" to import0`);
glue = glue.replace(moduleKey, `${JSON.stringify(newModule)}: import0`);

// Imports: the keys of the `import0` object, one per line (`        name: function(...`).
for (const [, oldName, newName] of map.imports) {
  const key = new RegExp(`^(\\s+)${escape(oldName)}:`, "m");
  if (!key.test(glue)) fail(`import ${oldName} is not a key of the glue's import object`);
  glue = glue.replace(key, `$1${JSON.stringify(newName)}:`);
}

// Exports: every `wasm.name` reference.
for (const [oldName, newName] of map.exports) {
  const ref = new RegExp(`\\bwasm\\.${escape(oldName)}(?![\\w$])`, "g");
  glue = glue.replace(ref, `wasm[${JSON.stringify(newName)}]`);
}
const left = glue.match(/\bwasm\.(?!__wbg_(?:init|get)_|instance\b)[A-Za-z_$][\w$]*/g);
if (left) fail(`the glue still names exports the module no longer has: ${[...new Set(left)].join(", ")}`);

writeFileSync(gluePath, glue);
console.error(
  `minify-names: ${map.imports.length} imports, ${map.exports.length} exports renamed (module "${newModule}")`,
);
