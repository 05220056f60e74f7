/**
 * Every `@example` in the JSDoc of `src/` is a fenced TypeScript block (```ts ... ```) that
 * compiles: each is written to a temporary directory, with `@orchestify/providers` (and its
 * subpaths, as `package.json` exports them) mapped to `src/`, and type-checked with the
 * TypeScript compiler API under the project's own compiler options.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")

interface Example {
  /** Relative to the project root. */
  readonly file: string
  /** The source line of the example's first line of code (1-based). */
  readonly line: number
  readonly code: string
}

interface Extracted {
  readonly examples: ReadonlyArray<Example>
  /** `file:line` of each `@example` without a fenced ```ts block. */
  readonly unfenced: ReadonlyArray<string>
}

const tag = /^@\w+/
const openFence = /^```(?:ts|typescript)\s*$/
const closeFence = /^```\s*$/

/** The fenced examples of one source file, and the `@example`s that are not fenced. */
export const extract = (file: string, text: string): Extracted => {
  const examples: Array<Example> = []
  const unfenced: Array<string> = []
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const startLine = text.slice(0, comment.index).split("\n").length
    // The comment's lines without their ` * ` gutter (one space after the star is the gutter).
    const lines = comment[0].split("\n").map((raw) =>
      raw.replace(/\*\/\s*$/, "").replace(/^\s*\/\*\*\s?/, "").replace(/^\s*\*(?!\/) ?/, "")
    )
    let i = 0
    while (i < lines.length) {
      if (!/^@example\b/.test(lines[i]!)) {
        i++
        continue
      }
      const at = startLine + i
      let fenced = false
      let inFence = false
      let code: Array<string> = []
      let codeLine = 0
      i++
      for (; i < lines.length; i++) {
        const line = lines[i]!
        if (inFence) {
          if (closeFence.test(line)) {
            examples.push({ file, line: codeLine, code: code.join("\n") })
            inFence = false
          } else {
            code.push(line)
          }
        } else if (openFence.test(line)) {
          fenced = true
          inFence = true
          code = []
          codeLine = startLine + i + 1
        } else if (tag.test(line)) {
          break
        }
      }
      if (!fenced) unfenced.push(`${file}:${at}`)
    }
  }
  return { examples, unfenced }
}

const sourceFiles = (dir: string): ReadonlyArray<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = Path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(full)
    return entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [full] : []
  })

/** `@orchestify/providers` and each subpath of `package.json` `exports`, mapped to the source file it is built from. */
const packagePaths = (): Record<string, Array<string>> => {
  const pkg = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as {
    readonly name: string
    readonly exports: Record<string, unknown>
  }
  const paths: Record<string, Array<string>> = {}
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const built = typeof target === "object" && target !== null ? (target as { default?: unknown }).default : undefined
    if (typeof built !== "string" || !built.startsWith("./dist/") || !built.endsWith(".js")) continue
    const source = Path.join(root, "src", built.slice("./dist/".length, -".js".length) + ".ts")
    paths[subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`] = [source]
  }
  return paths
}

const compilerOptions = (): ts.CompilerOptions => {
  const configPath = Path.join(root, "tsconfig.base.json")
  const config = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path))
  if (config.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"))
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, undefined, configPath)
  return {
    ...parsed.options,
    noEmit: true,
    // An example shows a use; it need not use every name it binds.
    noUnusedLocals: false,
    noUnusedParameters: false,
    paths: packagePaths(),
    typeRoots: [Path.join(root, "node_modules", "@types")]
  }
}

// The last program: the next one reuses its unchanged source files (src/, the libraries' types).
let previous: ts.Program | undefined = undefined

/**
 * Type-checks the examples; returns one line per problem, `file:line:column message`, pointing
 * into the source file the example comes from.
 */
export const typecheck = (examples: ReadonlyArray<Example>): ReadonlyArray<string> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "orchestify-examples-"))
  try {
    // ES modules, resolving packages from the project's node_modules.
    Fs.writeFileSync(Path.join(dir, "package.json"), JSON.stringify({ type: "module" }))
    Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(dir, "node_modules"), "dir")
    const origin = new Map<string, Example>()
    examples.forEach((example, index) => {
      const name = Path.join(dir, `${index}_${example.file.replace(/[^A-Za-z0-9]+/g, "_")}_${example.line}.ts`)
      // `export {}` keeps every example a module of its own (its names do not clash with another's).
      Fs.writeFileSync(name, `${example.code}\nexport {}\n`)
      origin.set(name, example)
    })
    const rootNames = [...origin.keys()]
    const options = compilerOptions()
    const program = ts.createProgram(
      previous === undefined ? { rootNames, options } : { rootNames, options, oldProgram: previous }
    )
    previous = program
    const problems: Array<string> = []
    for (const [name, example] of origin) {
      const sourceFile = program.getSourceFile(name)
      if (sourceFile === undefined) {
        problems.push(`${example.file}:${example.line} was not compiled`)
        continue
      }
      for (const diagnostic of ts.getPreEmitDiagnostics(program, sourceFile)) {
        const { character, line } = diagnostic.start === undefined
          ? { line: 0, character: 0 }
          : sourceFile.getLineAndCharacterOfPosition(diagnostic.start)
        const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
        problems.push(`${example.file}:${example.line + line}:${character + 1} ${message}`)
      }
    }
    return problems
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

const all = (): Extracted => {
  const found = [...sourceFiles(Path.join(root, "src"))].sort().map((path) =>
    extract(Path.relative(root, path), Fs.readFileSync(path, "utf8"))
  )
  return { examples: found.flatMap((e) => e.examples), unfenced: found.flatMap((e) => e.unfenced) }
}

describe("@example blocks in src", () => {
  it("the extractor finds fenced code with its source line, and reports unfenced examples", () => {
    const text = [
      "/**",
      " * Something.",
      " *",
      " * @example",
      " * ```ts",
      " * const a = 1",
      " * ```",
      " *",
      " * @since 0.1.0",
      " */",
      "export const a = 1",
      "/**",
      " * @example",
      " * const b = 2",
      " * @since 0.1.0",
      " */"
    ].join("\n")
    expect(extract("src/X.ts", text)).toEqual({
      examples: [{ file: "src/X.ts", line: 6, code: "const a = 1" }],
      unfenced: ["src/X.ts:13"]
    })
  })

  it("an example that does not compile is reported at its file and line", () => {
    const problems = typecheck([
      {
        file: "src/Broken.ts",
        line: 40,
        code: ["import { LLM } from \"@orchestify/providers\"", "", "const n: number = LLM.nope"].join("\n")
      },
      { file: "src/Fine.ts", line: 7, code: "import { LLM } from \"@orchestify/providers\"\nconst tag = LLM.LLM" }
    ])
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^src\/Broken\.ts:42:\d+ .*nope/)
  }, 60_000)

  it("every @example is fenced and type-checks", () => {
    const { examples, unfenced } = all()
    expect(unfenced, "@examples without a ```ts fence").toEqual([])
    expect(examples.length).toBeGreaterThan(10)
    expect(typecheck(examples), "@examples that do not compile").toEqual([])
  }, 120_000)
})
