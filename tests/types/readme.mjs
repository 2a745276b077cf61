// Type-checks the README's code examples against the package's declarations (npm run
// typecheck): every ```js, ```ts, ```jsx and ```tsx block is compiled as a TypeScript module,
// with readme-env.d.ts declaring what the examples take from the app (`auth`, ...). A failure
// names the README line of the block.

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const out = join(here, ".readme");
const EXT = { js: "ts", ts: "ts", jsx: "tsx", tsx: "tsx" };

const lines = readFileSync(join(root, "README.md"), "utf8").split("\n");
const blocks = [];
for (let i = 0; i < lines.length; i++) {
  const open = /^```(\w+)\s*$/.exec(lines[i]);
  if (!open) continue;
  const end = lines.indexOf("```", i + 1);
  if (end < 0) throw new Error(`README.md:${i + 1}: code block never closed`);
  if (EXT[open[1]]) blocks.push({ line: i + 1, ext: EXT[open[1]], code: lines.slice(i + 1, end).join("\n") });
  i = end;
}
if (blocks.length === 0) throw new Error("README.md has no js/ts code block to check");

rmSync(out, { recursive: true, force: true });
mkdirSync(out);
const files = blocks.map((b) => {
  const name = `readme-line-${b.line}.${b.ext}`;
  // Each block is a module of its own (top-level await, its own imports).
  writeFileSync(join(out, name), `${b.code}\nexport {};\n`);
  return name;
});
writeFileSync(
  join(out, "tsconfig.json"),
  JSON.stringify({
    extends: "../../../tsconfig.json",
    compilerOptions: { jsx: "react-jsx", noUnusedLocals: false },
    files: [...files, "../readme-env.d.ts"],
  }),
);
try {
  execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", relative(root, join(out, "tsconfig.json"))], {
    cwd: root,
    encoding: "utf8",
    stdio: "pipe",
  });
} catch (e) {
  process.stderr.write(`the README's examples do not type-check (file readme-line-N is the block at README.md:N):\n${e.stdout}${e.stderr}`);
  process.exit(1);
}
console.log(`README examples type-check: ${blocks.length} block(s)`);
