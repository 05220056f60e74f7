/**
 * `npx tsx bench/tokens.ts`: what counting costs, and what the tokenizer costs a program that
 * never counts. Not a timed test: numbers for docs/tokens.md and the targets (counting
 * <= 1 ms per 2k tokens; the tokenizer adds <= 50 ms to the start-up of a program that does not
 * count).
 *
 * 1. Load: fresh `node` processes on the compiled package (`build.ts`), interleaved round by
 *    round: our package entry imported (the tokenizer is not loaded: lazy), the same plus a first
 *    count (which loads it), and each candidate package alone, imported and ready for a first count
 *    (`gpt-tokenizer`, `js-tiktoken`).
 * 2. Speed: in this process, a 2k-token prompt counted by each candidate and by ours
 *    (`LLM.Service.countTokens`: the tokenizer plus chat framing; and the estimate), interleaved,
 *    on prose (the BPE merge caches warm, as for real prompts that share words) and on fresh random
 *    words each time (caches cold).
 *
 * Options: `--rounds N` (default 7), `--iterations N` (per round and contender, default 200).
 */
import * as Effect from "effect/Effect"
import { countTokens as gptCount } from "gpt-tokenizer/encoding/o200k_base"
import { Tiktoken } from "js-tiktoken/lite"
import o200k from "js-tiktoken/ranks/o200k_base"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import * as Message from "../src/Message.js"
import * as MockLLM from "../src/testing/MockLLM.js"
import { build, outDir } from "./build.js"
import { median, option } from "./stats.js"

const rounds = Number(option("--rounds") ?? 7)
const iterations = Number(option("--iterations") ?? 200)
const root = Path.resolve(import.meta.dirname, "..")

const rotate = <A>(items: ReadonlyArray<A>, by: number): Array<A> =>
  items.map((_, i) => items[(i + by) % items.length]!)

// -----------------------------------------------------------------------------
// 1. Load
// -----------------------------------------------------------------------------

build()
const index = Path.join(outDir, "src", "index.js")
const mock = Path.join(outDir, "src", "testing", "MockLLM.js")

/** A script for a fresh process: prints the milliseconds from its first line to the end of `body`. */
const script = (body: string) => `const t0 = performance.now();\n${body}\nconsole.log(performance.now() - t0)`

const loads: ReadonlyArray<{ readonly id: string; readonly code: string }> = [
  { id: "node, empty script (the clock starts in the script)", code: script("") },
  {
    id: "ours: import the package (no count)",
    code: script(`await import(${JSON.stringify(index)})`)
  },
  {
    id: "ours: import + first count (gpt-4o)",
    code: script(`
const { Effect } = await import("effect")
const { Message } = await import(${JSON.stringify(index)})
const MockLLM = await import(${JSON.stringify(mock)})
await Effect.runPromise(Effect.flatMap(MockLLM.make([]), (llm) =>
  llm.countTokens({ model: "gpt-4o", messages: [Message.user("Hello")] })))`)
  },
  {
    id: "gpt-tokenizer: import + first count",
    code: script(`const m = await import("gpt-tokenizer/encoding/o200k_base"); m.countTokens("Hello")`)
  },
  {
    id: "js-tiktoken: import + first count",
    code: script(`
const { Tiktoken } = await import("js-tiktoken/lite")
const ranks = (await import("js-tiktoken/ranks/o200k_base")).default
new Tiktoken(ranks).encode("Hello").length`)
  }
]

const loadTimes = new Map<string, Array<number>>(loads.map(({ id }) => [id, []]))
for (let round = 0; round < rounds; round++) {
  for (const { code, id } of rotate(loads, round)) {
    const out = ChildProcess.execFileSync(process.execPath, ["--input-type=module", "-e", code], {
      cwd: root,
      encoding: "utf8"
    })
    loadTimes.get(id)!.push(Number(out.trim()))
  }
}

/**
 * Which tokenizer modules a process loads: a resolve hook (registered with `module.register`)
 * appends every resolved URL of `gpt-tokenizer` or `js-tiktoken` to a file.
 */
const tokenizerModulesLoadedBy = (code: string): number => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokens-bench-"))
  const log = Path.join(dir, "loaded.txt")
  const hook = Path.join(dir, "hook.mjs")
  Fs.writeFileSync(log, "")
  Fs.writeFileSync(
    hook,
    `import * as Fs from "node:fs"
import * as Os from "node:os"
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  if (/gpt-tokenizer|js-tiktoken/.test(resolved.url)) Fs.appendFileSync(${JSON.stringify(log)}, resolved.url + "\\n")
  return resolved
}`
  )
  const register = `import { register } from "node:module"; register(${JSON.stringify(Url.pathToFileURL(hook).href)})`
  ChildProcess.execFileSync(process.execPath, [
    "--import",
    `data:text/javascript,${encodeURIComponent(register)}`,
    "--input-type=module",
    "-e",
    code
  ], { cwd: root, encoding: "utf8" })
  const loaded = Fs.readFileSync(log, "utf8").split("\n").filter((line) => line !== "").length
  Fs.rmSync(dir, { recursive: true, force: true })
  return loaded
}
const loadedByImport = tokenizerModulesLoadedBy(loads[1]!.code)
const loadedByCount = tokenizerModulesLoadedBy(loads[2]!.code)

// -----------------------------------------------------------------------------
// 2. Speed
// -----------------------------------------------------------------------------

const tiktoken = new Tiktoken(o200k)
const paragraph = "The quarterly report shows revenue grew 12% year over year, driven by strong demand in " +
  "the enterprise segment; operating costs rose 4%, mostly from hiring in engineering and support. "
let prose = ""
while (gptCount(prose) < 2000) prose += paragraph

// About 2k tokens of words that never repeat (identifiers, hashes): the worst case of a BPE cache.
const randomWords = (): string => {
  let text = ""
  while (text.length < 3_400) text += Math.random().toString(36).slice(2, 7) + " "
  return text
}

// Real text that does not repeat: 2k-token slices of TypeScript's `lib.dom.d.ts` (code and doc
// comments), a different slice for every count.
const corpus = Fs.readFileSync(Path.join(root, "node_modules", "typescript", "lib", "lib.dom.d.ts"), "utf8")
let sliceAt = 0
const codeSlice = (): string => {
  const slice = corpus.slice(sliceAt, sliceAt + 7_000)
  sliceAt = (sliceAt + 7_000) % (corpus.length - 7_000)
  return slice
}

const llm = Effect.runSync(MockLLM.make([]))
const countOurs = (model: string, text: string) =>
  Effect.runSync(llm.countTokens({ model, messages: [Message.user(text)] }))
// Load our tokenizer (once) before timing.
await Effect.runPromise(llm.countTokens({ model: "gpt-4o", messages: [Message.user("warm up")] }))

interface Contender {
  readonly id: string
  readonly count: (text: string) => number
}
const contenders: ReadonlyArray<Contender> = [
  { id: "gpt-tokenizer countTokens", count: (text) => gptCount(text) },
  { id: "js-tiktoken encode().length", count: (text) => tiktoken.encode(text).length },
  { id: "ours: countTokens, gpt-4o (tokenizer)", count: (text) => countOurs("gpt-4o", text).inputTokens },
  { id: "ours: countTokens, claude (estimate)", count: (text) => countOurs("claude-haiku-4-5", text).inputTokens }
]

const speed = (workload: "prose" | "code" | "random") => {
  const times = new Map<string, Array<number>>(contenders.map(({ id }) => [id, []]))
  const fresh = () => Array.from({ length: iterations }, workload === "code" ? codeSlice : randomWords)
  for (const contender of contenders) for (let i = 0; i < 20; i++) contender.count(prose)
  for (let round = 0; round < rounds; round++) {
    // Fresh texts each round and contender: no contender meets a text twice.
    const batch = workload === "prose" ? [prose] : fresh()
    for (const contender of rotate(contenders, round)) {
      const texts = workload === "prose" ? batch : fresh()
      const started = performance.now()
      for (let i = 0; i < iterations; i++) contender.count(texts[i % texts.length]!)
      times.get(contender.id)!.push(((performance.now() - started) * 1000) / iterations)
    }
  }
  return times
}

const proseTimes = speed("prose")
const codeTimes = speed("code")
const randomTimes = speed("random")
const randomTokens = gptCount(randomWords())
const codeTokens = gptCount(codeSlice())

// -----------------------------------------------------------------------------
// Report
// -----------------------------------------------------------------------------

const fmt = (n: number, digits = 1) => n.toFixed(digits)
console.log(`\n## Load (fresh node processes, ${rounds} rounds interleaved; median ms, min-max)\n`)
console.log("| process | median | min-max |")
console.log("| --- | ---: | ---: |")
for (const { id } of loads) {
  const values = loadTimes.get(id)!
  console.log(`| ${id} | ${fmt(median(values))} | ${fmt(Math.min(...values))}-${fmt(Math.max(...values))} |`)
}
const gptLoad = median(loadTimes.get("gpt-tokenizer: import + first count")!)
const tiktokenLoad = median(loadTimes.get("js-tiktoken: import + first count")!)
const nothing = median(loadTimes.get("node, empty script (the clock starts in the script)")!)
console.log(`\njs-tiktoken / gpt-tokenizer load: ${fmt((tiktokenLoad - nothing) / (gptLoad - nothing), 2)}x`)
const oursImport = median(loadTimes.get("ours: import the package (no count)")!)
const oursFirst = median(loadTimes.get("ours: import + first count (gpt-4o)")!)
console.log(
  `Tokenizer modules loaded by importing the package: ${loadedByImport}; by a first count: ${loadedByCount}. ` +
    `The first count adds ${fmt(oursFirst - oursImport)} ms to the package import; a program that never counts ` +
    `pays ${loadedByImport === 0 ? "0 ms" : "the tokenizer's load"} (target: <= 50 ms added at start-up).`
)

for (
  const [title, times] of [
    [`2k-token prose (${gptCount(prose)} tokens)`, proseTimes],
    [`fresh slices of lib.dom.d.ts (about ${codeTokens} tokens, never the same text twice)`, codeTimes],
    [`fresh random words (about ${randomTokens} tokens, caches cold)`, randomTimes]
  ] as const
) {
  console.log(`\n## Count: ${title}; ${rounds} rounds x ${iterations} counts, interleaved; median µs per count\n`)
  console.log("| contender | median µs | min-max | vs gpt-tokenizer |")
  console.log("| --- | ---: | ---: | ---: |")
  const base = median(times.get("gpt-tokenizer countTokens")!)
  for (const { id } of contenders) {
    const values = times.get(id)!
    const m = median(values)
    console.log(
      `| ${id} | ${fmt(m)} | ${fmt(Math.min(...values))}-${fmt(Math.max(...values))} | ${fmt(m / base, 2)}x |`
    )
  }
}
console.log("\nTarget: counting <= 1 ms (1000 µs) per 2k tokens.")
