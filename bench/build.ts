/**
 * Compiles `src/` and `bench/` to plain JavaScript under `bench/results/build/` (TypeScript's
 * `transpileModule`: no type check, one file at a time, `.js` specifiers kept), so the client
 * processes run on plain `node`, as a user's compiled program does: no TypeScript loader hook in
 * their start-up time or their memory. The layout is kept, so `bench/contenders/ours.ts`'s
 * `../../src/index.js` is the compiled package entry.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")

/** Where the compiled tree goes. */
export const outDir = Path.join(root, "bench", "results", "build")

const walk = (dir: string): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = Path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "results" || entry.name === "node_modules" ? [] : walk(path)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : []
  })

const compilerOptions: ts.CompilerOptions = {
  // ESM out: `transpileModule` cannot see `"type": "module"`, so NodeNext would give CommonJS.
  module: ts.ModuleKind.ES2022,
  target: ts.ScriptTarget.ES2022,
  verbatimModuleSyntax: true,
  isolatedModules: true,
  sourceMap: false
}

/** Compiles `src/` and `bench/`; returns the number of files written. */
export const build = (): number => {
  Fs.rmSync(outDir, { recursive: true, force: true })
  let count = 0
  for (const dir of ["src", "bench"]) {
    for (const file of walk(Path.join(root, dir))) {
      const output = ts.transpileModule(Fs.readFileSync(file, "utf8"), { compilerOptions, fileName: file })
      const target = Path.join(outDir, Path.relative(root, file)).replace(/\.ts$/, ".js")
      Fs.mkdirSync(Path.dirname(target), { recursive: true })
      Fs.writeFileSync(target, output.outputText)
      count++
    }
  }
  return count
}
