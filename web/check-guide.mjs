// Fails unless every ```ts block of docs/typescript.md is copied verbatim
// from a file in example/: tsc type-checks those files, so the guide's code
// is type-checked too and cannot drift from the generated API.
import { readFileSync, readdirSync } from "node:fs";

const guidePath = new URL("../docs/typescript.md", import.meta.url);
const exampleDir = new URL("./example/", import.meta.url);
const guide = readFileSync(guidePath, "utf8");
const sources = readdirSync(exampleDir)
  .filter((name) => name.endsWith(".ts"))
  .map((name) => readFileSync(new URL(name, exampleDir), "utf8"));
const blocks = [...guide.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
if (blocks.length === 0) {
  console.error("docs/typescript.md: no ```ts blocks found; has the guide moved?");
  process.exit(1);
}
let stale = 0;
for (const block of blocks) {
  if (!sources.some((source) => source.includes(block))) {
    console.error(`docs/typescript.md: this block is not in web/example/*.ts (copy it from there, verbatim):\n${block}`);
    stale++;
  }
}
if (stale > 0) {
  process.exit(1);
}
