/**
 * `npm run bench`: the benchmark driver.
 *
 * 1. Compiles `src/` and `bench/` to JavaScript (`build.ts`), so clients run on plain `node`.
 * 2. Starts the fake provider (`server.ts`) in its own process on 127.0.0.1.
 * 3. For each round, for each workload, runs one client process (`client.ts`) per contender, in an
 *    order rotated every round, so that drift on the machine spreads over all contenders. The
 *    workloads are W1-W4 and `S`, start-up only inside an Effect program (its `effect` modules
 *    loaded before the clock starts), reported as columns of the start-up table.
 * 4. Prints Markdown tables (medians, min-max, ratios against raw `fetch` and the same-vendor SDK,
 *    and the issue's targets) and writes every run to `bench/results/latest.json`.
 *
 * Options: `--rounds N` (default 3), `--quick` (small sizes, 1 round unless `--rounds`),
 * `--only id,id` (contenders), `--all` (also ours' bare layers behind `Resilience.layerRetry()`), `--workloads W1,W2,S`, `--events-per-write N` (server writes, default
 * 16), `--tsx` (run the TypeScript sources through the tsx loader instead of compiling them; its
 * hook inflates every contender's start-up), `--out path`.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { build, outDir } from "./build.js"
import type { Job, RunResult, Sizes, Workload } from "./client.js"
import * as Contenders from "./contenders/index.js"

// -----------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------

const args = process.argv.slice(2)
const flag = (name: string) => args.includes(name)
const option = (name: string): string | undefined => {
  const index = args.indexOf(name)
  return index === -1 ? undefined : args[index + 1]
}

const quick = flag("--quick")
const useTsx = flag("--tsx")
const rounds = Number(option("--rounds") ?? (quick ? 1 : 3))
const eventsPerWrite = Number(option("--events-per-write") ?? 16)
const root = Path.resolve(import.meta.dirname, "..")
const out = Path.resolve(option("--out") ?? Path.join(root, "bench", "results", "latest.json"))

const fullSizes: Sizes = {
  w1Calls: 2000,
  w1Chunks: 16,
  w2Chunks: 20_000,
  w3Streams: 200,
  w3Chunks: 500,
  w4Calls: 1000,
  w4Chunks: 16
}
const quickSizes: Sizes = {
  w1Calls: 200,
  w1Chunks: 16,
  w2Chunks: 2000,
  w3Streams: 20,
  w3Chunks: 100,
  w4Calls: 100,
  w4Chunks: 16
}
const sizes = quick ? quickSizes : fullSizes

const allWorkloads: ReadonlyArray<Workload> = ["W1", "W2", "W3", "W4", "S"]
const workloads = (option("--workloads")?.split(",") ?? allWorkloads) as ReadonlyArray<Workload>
const unknownWorkloads = workloads.filter((workload) => !allWorkloads.includes(workload))
if (unknownWorkloads.length > 0) {
  throw new Error(`unknown workload ${unknownWorkloads.join(",")} (known: ${allWorkloads.join(",")})`)
}
/** The workloads with a workload to time, and a table of their own: all but `S`. */
type Timed = Exclude<Workload, "S">
const timedWorkloads = workloads.filter((workload): workload is Timed => workload !== "S")
const runsS = workloads.includes("S")
const only = option("--only")?.split(",")
const contenders = only !== undefined
  ? Contenders.all.filter((c) => only.includes(c.id))
  : flag("--all")
  ? Contenders.all
  : Contenders.all.filter((c) => c.byDefault)
if (contenders.length === 0) throw new Error(`no contender matches --only ${only?.join(",")}`)

const runTimeoutMs = quick ? 120_000 : 300_000

// -----------------------------------------------------------------------------
// Processes
// -----------------------------------------------------------------------------

const base = useTsx ? Path.join(root, "bench") : Path.join(outDir, "bench")
const ext = useTsx ? ".ts" : ".js"
const execArgv = useTsx ? ["--import", "tsx"] : []
const env = { ...process.env }
delete env.NODE_OPTIONS

const startServer = (): Promise<{ readonly child: ChildProcess.ChildProcess; readonly port: number }> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.fork(
      Path.join(base, `server${ext}`),
      ["--events-per-write", String(eventsPerWrite)],
      { execArgv, env, stdio: ["ignore", "inherit", "inherit", "ipc"] }
    )
    children.add(child)
    child.once("message", (message: { port: number }) => resolve({ child, port: message.port }))
    child.once("exit", (code) => reject(new Error(`the bench server exited (${code})`)))
  })

const failedRun = (job: Job, why: string): RunResult => ({
  contender: job.contender,
  workload: job.workload,
  ok: false,
  failed: 1,
  wrong: 0,
  problems: [why],
  importMs: Number.NaN,
  startupMs: Number.NaN,
  totalMs: Number.NaN,
  cpuMs: Number.NaN,
  startupCpuMs: Number.NaN,
  maxRssMb: Number.NaN,
  startRssMb: Number.NaN,
  usageChecked: false
})

/** The children running now, ended (by pid) if the driver is interrupted. */
const children = new Set<ChildProcess.ChildProcess>()
const stopChildren = () => {
  for (const child of children) child.kill("SIGKILL")
}
process.on("SIGINT", () => {
  stopChildren()
  process.exit(130)
})
process.on("SIGTERM", () => {
  stopChildren()
  process.exit(143)
})

const runClient = (job: Job): Promise<RunResult> =>
  new Promise((resolve) => {
    const child = ChildProcess.fork(Path.join(base, `client${ext}`), [JSON.stringify(job)], {
      execArgv,
      env,
      stdio: ["ignore", "pipe", "pipe", "ipc"]
    })
    children.add(child)
    let output = ""
    const keep = (data: Buffer) => {
      output = (output + data.toString("utf8")).slice(-2000)
    }
    child.stdout?.on("data", keep)
    child.stderr?.on("data", keep)
    let result: RunResult | undefined = undefined
    const timer = setTimeout(() => {
      output += `\n(killed after ${runTimeoutMs / 1000} s)`
      child.kill("SIGKILL")
    }, runTimeoutMs)
    child.on("message", (message: RunResult) => {
      result = message
    })
    child.on("exit", (code) => {
      children.delete(child)
      clearTimeout(timer)
      resolve(result ?? failedRun(job, `client exited (${code}) without a result: ${output.trim().slice(-600)}`))
    })
  })

// -----------------------------------------------------------------------------
// Statistics and the report
// -----------------------------------------------------------------------------

interface Stat {
  readonly median: number
  readonly min: number
  readonly max: number
}

const stat = (values: ReadonlyArray<number | undefined>): Stat | undefined => {
  const xs = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b)
  if (xs.length === 0) return undefined
  const mid = Math.floor(xs.length / 2)
  const median = xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2
  return { median, min: xs[0]!, max: xs[xs.length - 1]! }
}

interface Summary {
  readonly contender: string
  readonly workload: Workload
  readonly vendor: Contenders.Vendor
  readonly family: Contenders.Family
  /** `ok`, `wrong` (something received differed from what was sent) or `failed` (a call or a run failed). */
  readonly status: "ok" | "wrong" | "failed"
  readonly problems: ReadonlyArray<string>
  readonly usageChecked: boolean
  /** The workload's headline time: W1 ms per call, W2 time to last chunk, W3 and W4 total time. */
  readonly time?: Stat | undefined
  readonly chunksPerSec?: Stat | undefined
  readonly ttfcMs?: Stat | undefined
  readonly cpuMs?: Stat | undefined
  readonly maxRssMb?: Stat | undefined
  /** Median time over the same-vendor raw fetch's, and over the same-vendor SDK's. */
  readonly timeVsFetch?: number | undefined
  readonly timeVsSdk?: number | undefined
  readonly rssVsSdk?: number | undefined
}

interface StartupSummary {
  readonly contender: string
  readonly vendor: Contenders.Vendor
  readonly family: Contenders.Family
  /** Over every run of W1-W4. */
  readonly startupMs?: Stat | undefined
  readonly startupCpuMs?: Stat | undefined
  readonly importMs?: Stat | undefined
  readonly startRssMb?: Stat | undefined
  readonly vsSdk?: number | undefined
  /** Over the runs of `S`: the same start-up inside an Effect program; absent when `S` did not run. */
  readonly inEffectProgram?: EffectStartup | undefined
}

/** Start-up inside an Effect program (job `S`); the stats are of its runs when all were `ok`. */
interface EffectStartup {
  readonly status: Summary["status"]
  readonly problems: ReadonlyArray<string>
  readonly usageChecked: boolean
  readonly startupMs?: Stat | undefined
  readonly startupCpuMs?: Stat | undefined
  readonly importMs?: Stat | undefined
  readonly startRssMb?: Stat | undefined
  /** Median start-up over the same-vendor SDK's, both in an Effect program. */
  readonly vsSdk?: number | undefined
}

const statusOf = (runs: ReadonlyArray<RunResult>): Summary["status"] =>
  runs.some((run) => run.wrong > 0) ? "wrong" : runs.some((run) => !run.ok) ? "failed" : "ok"

const problemsOf = (runs: ReadonlyArray<RunResult>): ReadonlyArray<string> =>
  [...new Set(runs.flatMap((run) => run.problems))].slice(0, 5)

const headline = (run: RunResult): number | undefined =>
  run.workload === "W1" ? run.perCallMs : run.workload === "W2" ? run.ttlcMs : run.totalMs

const summarize = (runs: ReadonlyArray<RunResult>): {
  readonly workloads: ReadonlyArray<Summary>
  readonly startup: ReadonlyArray<StartupSummary>
} => {
  const partial = timedWorkloads.flatMap((workload) =>
    contenders.map((contender) => {
      const mine = runs.filter((run) => run.contender === contender.id && run.workload === workload)
      const status = statusOf(mine)
      const good = status === "ok" ? mine : []
      return {
        contender: contender.id,
        workload,
        vendor: contender.vendor,
        family: contender.family,
        status,
        problems: problemsOf(mine),
        usageChecked: mine.length > 0 && mine.every((run) => run.usageChecked),
        time: stat(good.map(headline)),
        chunksPerSec: stat(good.map((run) => run.chunksPerSec)),
        ttfcMs: stat(good.map((run) => run.ttfcMs)),
        cpuMs: stat(good.map((run) => run.cpuMs)),
        maxRssMb: stat(good.map((run) => run.maxRssMb))
      }
    })
  )
  const find = (workload: Workload, id: string) => partial.find((s) => s.workload === workload && s.contender === id)
  const ratio = (a: Stat | undefined, b: Stat | undefined) =>
    a === undefined || b === undefined || b.median === 0 ? undefined : a.median / b.median
  const summaries = partial.map((s): Summary => ({
    ...s,
    timeVsFetch: ratio(s.time, find(s.workload, `fetch-${s.vendor}`)?.time),
    timeVsSdk: ratio(s.time, find(s.workload, `sdk-${s.vendor}`)?.time),
    rssVsSdk: ratio(s.maxRssMb, find(s.workload, `sdk-${s.vendor}`)?.maxRssMb)
  }))
  const startupPartial = contenders.map((contender) => {
    const mine = runs.filter((run) =>
      run.contender === contender.id && run.workload !== "S" && Number.isFinite(run.startupMs)
    )
    const inEffect = runs.filter((run) => run.contender === contender.id && run.workload === "S")
    const status = statusOf(inEffect)
    const good = status === "ok" ? inEffect : []
    return {
      contender: contender.id,
      vendor: contender.vendor,
      family: contender.family,
      startupMs: stat(mine.map((run) => run.startupMs)),
      startupCpuMs: stat(mine.map((run) => run.startupCpuMs)),
      importMs: stat(mine.map((run) => run.importMs)),
      startRssMb: stat(mine.map((run) => run.startRssMb)),
      inEffectProgram: runsS
        ? {
          status,
          problems: problemsOf(inEffect),
          usageChecked: inEffect.length > 0 && inEffect.every((run) => run.usageChecked),
          startupMs: stat(good.map((run) => run.startupMs)),
          startupCpuMs: stat(good.map((run) => run.startupCpuMs)),
          importMs: stat(good.map((run) => run.importMs)),
          startRssMb: stat(good.map((run) => run.startRssMb))
        }
        : undefined
    }
  })
  const startup = startupPartial.map((s): StartupSummary => {
    const sdk = startupPartial.find((t) => t.contender === `sdk-${s.vendor}`)
    return {
      ...s,
      vsSdk: ratio(s.startupMs, sdk?.startupMs),
      inEffectProgram: s.inEffectProgram === undefined
        ? undefined
        : { ...s.inEffectProgram, vsSdk: ratio(s.inEffectProgram.startupMs, sdk?.inEffectProgram?.startupMs) }
    }
  })
  return { workloads: summaries, startup }
}

const fmt = (x: number | undefined, digits = 0): string =>
  x === undefined || !Number.isFinite(x)
    ? "-"
    : x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

const digitsFor = (x: number) => (x < 1 ? 3 : x < 10 ? 2 : x < 100 ? 1 : 0)

const fmtStat = (s: Stat | undefined): string => {
  if (s === undefined) return "-"
  const d = digitsFor(s.median)
  return `${fmt(s.median, d)} (${fmt(s.min, d)}-${fmt(s.max, d)})`
}

const fmtRatio = (x: number | undefined) => (x === undefined ? "-" : `${x.toFixed(2)}x`)

const statusCell = (s: Summary): string =>
  s.status === "ok" ? (s.usageChecked ? "ok, usage exact" : "ok") : `**${s.status.toUpperCase()}**`

const titles: Record<Timed, string> = {
  W1: `W1: ${fmt(sizes.w1Calls)} sequential non-streaming calls`,
  W2: `W2: one stream of ${fmt(sizes.w2Chunks)} chunks`,
  W3: `W3: ${fmt(sizes.w3Streams)} concurrent streams of ${fmt(sizes.w3Chunks)} chunks`,
  W4: `W4: ${fmt(sizes.w4Calls)} concurrent non-streaming calls`
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")

/** One of the targets, for one of ours. `ratio` is what was measured, `limit` the target. */
interface Target {
  readonly contender: string
  readonly target: string
  readonly ratio: number | undefined
  readonly limit: number
  readonly met: boolean | undefined
  /** Set when the contender was not correct on this workload: `wrong` or `failed`. */
  readonly status?: Summary["status"] | undefined
}

const peerNames: Record<string, string> = { "effect-ai": "@effect/ai", vercel: "Vercel" }

const targets = (summaries: ReadonlyArray<Summary>, startup: ReadonlyArray<StartupSummary>): Array<Target> => {
  const out: Array<Target> = []
  const get = (workload: Workload, id: string) => summaries.find((s) => s.workload === workload && s.contender === id)
  const check = (contender: string, target: string, ratio: number | undefined, limit: number) =>
    out.push({ contender, target, ratio, limit, met: ratio === undefined ? undefined : ratio <= limit })
  for (const contender of contenders.filter((c) => c.family === "ours")) {
    const id = contender.id
    const w = (workload: Workload) => get(workload, id)
    for (const workload of workloads) {
      const s = workload === "S" ? startup.find((t) => t.contender === id)?.inEffectProgram : w(workload)
      if (s !== undefined && s.status !== "ok") {
        out.push({
          contender: id,
          target: `${workload} correct`,
          ratio: undefined,
          limit: 0,
          met: false,
          status: s.status
        })
      }
    }
    check(id, "W1 <= 1.05x SDK", w("W1")?.timeVsSdk, 1.05)
    for (const workload of ["W2", "W3"] as const) {
      check(id, `${workload} <= 1.0x SDK`, w(workload)?.timeVsSdk, 1.0)
      check(id, `${workload} <= 1.3x fetch`, w(workload)?.timeVsFetch, 1.3)
    }
    for (const workload of ["W3", "W4"] as const) {
      check(id, `${workload} RSS <= 1.15x SDK`, w(workload)?.rssVsSdk, 1.15)
    }
    check(id, "start-up <= 1.5x SDK", startup.find((s) => s.contender === id)?.vsSdk, 1.5)
    check(
      id,
      "start-up in an Effect program <= 1.5x SDK",
      startup.find((s) => s.contender === id)?.inEffectProgram?.vsSdk,
      1.5
    )
    if (id.includes("litellm")) {
      check(id, "W1 <= 1.25x fetch", w("W1")?.timeVsFetch, 1.25)
      check(id, "W2 <= 1.25x fetch", w("W2")?.timeVsFetch, 1.25)
    }
    for (const peer of ["effect-ai", "vercel"]) {
      for (const workload of timedWorkloads) {
        const theirs = get(workload, `${peer}-${contender.vendor}`)
        if (theirs === undefined || theirs.status !== "ok" || theirs.time === undefined) continue
        const mine = w(workload)?.time?.median
        check(id, `${workload} < ${peerNames[peer]}`, mine === undefined ? undefined : mine / theirs.time.median, 1.0)
      }
    }
  }
  return out
}

/** The targets as a matrix: one row per contender of ours, one column per target. */
const targetTable = (list: ReadonlyArray<Target>): string => {
  const correctness = (t: Target) => t.target.endsWith("correct") ? 0 : 1
  const columns = [...new Set([...list].sort((a, b) => correctness(a) - correctness(b)).map((t) => t.target))]
  const rows = [...new Set(list.map((t) => t.contender))]
  const cell = (t: Target | undefined) =>
    t === undefined
      ? ""
      : t.ratio === undefined
      ? (t.status !== undefined ? `**${t.status}**` : "-")
      : t.met === true
      ? `${t.ratio.toFixed(2)}x ok`
      : `**${t.ratio.toFixed(2)}x miss**`
  return table(
    ["target", ...rows],
    columns.map((column) => [
      column,
      ...rows.map((row) => cell(list.find((t) => t.contender === row && t.target === column)))
    ])
  )
}

const markdown = (
  summaries: ReadonlyArray<Summary>,
  startup: ReadonlyArray<StartupSummary>,
  machine: Record<string, unknown>
): string => {
  const lines: Array<string> = []
  lines.push(
    `Machine: ${machine.cpu}, ${machine.nproc} cores, ${machine.memGb} GB, Node ${machine.node}; ` +
      `${rounds} round(s)${
        quick ? " (quick sizes)" : ""
      }; load average ${machine.loadBefore} before, ${machine.loadAfter} after; src at ${machine.commit}` +
      (Number(machine.srcChanges) > 0 ? ` + ${machine.srcChanges} uncommitted files.` : ".")
  )
  lines.push("")
  lines.push("Medians over rounds, (min-max); ratios are of medians, against the same vendor's raw fetch and SDK.")
  for (const workload of timedWorkloads) {
    const rows = summaries.filter((s) => s.workload === workload)
    lines.push("", `### ${titles[workload]}`, "")
    const timeName = workload === "W1" ? "ms per call" : workload === "W2" ? "time to last chunk, ms" : "total ms"
    const header = ["contender", "result", timeName, "x fetch", "x SDK"]
    if (workload === "W2" || workload === "W3") header.push("chunks/s")
    if (workload === "W2") header.push("first chunk, ms")
    header.push("CPU ms", "peak RSS MB")
    if (workload === "W3" || workload === "W4") header.push("RSS x SDK")
    lines.push(table(
      header,
      rows.map((s) => {
        const row = [s.contender, statusCell(s), fmtStat(s.time), fmtRatio(s.timeVsFetch), fmtRatio(s.timeVsSdk)]
        if (workload === "W2" || workload === "W3") row.push(fmt(s.chunksPerSec?.median))
        if (workload === "W2") row.push(fmt(s.ttfcMs?.median, 1))
        row.push(fmt(s.cpuMs?.median), fmtStat(s.maxRssMb))
        if (workload === "W3" || workload === "W4") row.push(fmtRatio(s.rssVsSdk))
        return row
      })
    ))
  }
  lines.push("", "### Start-up: import of the libraries to the first reply (every run of W1-W4)", "")
  if (runsS) {
    lines.push(
      "In an Effect program: the same start-up in the runs of S, which import the `effect` modules such a " +
        "program has already loaded (Effect, Layer, Stream, Schema, ManagedRuntime, Redacted) before the clock starts.",
      ""
    )
  }
  const effectCell = (e: EffectStartup | undefined) =>
    e === undefined || e.status === "ok" ? fmtStat(e?.startupMs) : `**${e.status.toUpperCase()}**`
  lines.push(table(
    [
      "contender",
      "start-up ms",
      "x SDK",
      ...(runsS ? ["in an Effect program, ms", "x SDK"] : []),
      "import ms",
      "CPU ms",
      "RSS after start MB"
    ],
    startup.map((s) => [
      s.contender,
      fmtStat(s.startupMs),
      fmtRatio(s.vsSdk),
      ...(runsS ? [effectCell(s.inEffectProgram), fmtRatio(s.inEffectProgram?.vsSdk)] : []),
      fmt(s.importMs?.median),
      fmt(s.startupCpuMs?.median),
      fmt(s.startRssMb?.median, 1)
    ])
  ))
  const problems = [
    ...summaries.filter((s) => s.status !== "ok"),
    ...startup.flatMap((s) =>
      s.inEffectProgram !== undefined && s.inEffectProgram.status !== "ok"
        ? [{ contender: s.contender, workload: "S", ...s.inEffectProgram }]
        : []
    )
  ]
  if (problems.length > 0) {
    lines.push("", "### Wrong or failed", "")
    for (const s of problems) lines.push(`- ${s.contender} ${s.workload}: ${s.status}: ${s.problems.join("; ")}`)
  }
  const list = targets(summaries, startup)
  if (list.length > 0) {
    lines.push("", "### The issue's targets, for ours (ratio of medians; ok = met)", "")
    lines.push(targetTable(list))
  }
  return lines.join("\n")
}

// -----------------------------------------------------------------------------
// Main
// -----------------------------------------------------------------------------

const git = (args: ReadonlyArray<string>): string => {
  try {
    return ChildProcess.execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim()
  } catch {
    return "unknown"
  }
}

const loadavg = () => Os.loadavg().map((x) => x.toFixed(2)).join(" ")

const main = async () => {
  const started = Date.now()
  if (!useTsx) {
    const files = build()
    console.error(`compiled ${files} files to ${Path.relative(root, outDir)}`)
  }
  const machine = {
    cpu: Os.cpus()[0]?.model ?? "unknown",
    nproc: Os.availableParallelism(),
    memGb: Math.round(Os.totalmem() / 1024 ** 3),
    node: process.version,
    platform: `${Os.platform()} ${Os.release()}`,
    commit: git(["rev-parse", "--short", "HEAD"]),
    /** Files of `src/` changed since that commit when the benchmark compiled it. */
    srcChanges: git(["status", "--short", "--", "src"]).split("\n").filter((line) => line !== "").length,
    loadBefore: loadavg(),
    loadAfter: ""
  }
  const server = await startServer()
  const origin = `http://127.0.0.1:${server.port}`
  console.error(
    `bench server on ${origin}; ${contenders.length} contenders x ${workloads.length} workloads x ${rounds} rounds`
  )
  const runs: Array<RunResult & { readonly round: number; readonly load: string }> = []
  try {
    for (let round = 0; round < rounds; round++) {
      for (const workload of workloads) {
        // Rotate the order every round so no contender always runs first (or right after a heavy one).
        const shift = (round * 5 + workloads.indexOf(workload)) % contenders.length
        const order = [...contenders.slice(shift), ...contenders.slice(0, shift)]
        for (const contender of order) {
          const load = loadavg()
          const result = await runClient({ contender: contender.id, workload, origin, sizes })
          runs.push({ ...result, round: round + 1, load })
          const time = headline(result)
          console.error(
            `round ${round + 1}/${rounds} ${workload} ${contender.id.padEnd(22)} ` +
              `${result.ok ? "ok   " : result.wrong > 0 ? "WRONG" : "FAIL "} ${fmt(time, 3).padStart(10)} ms ` +
              `rss ${fmt(result.maxRssMb)} MB start ${fmt(result.startupMs)} ms (load ${load})` +
              (result.ok ? "" : `\n    ${result.problems.join("\n    ")}`)
          )
        }
      }
    }
  } finally {
    server.child.kill("SIGTERM")
  }
  machine.loadAfter = loadavg()
  const { startup, workloads: summaries } = summarize(runs)
  const report = markdown(summaries, startup, machine)
  console.log(report)
  Fs.mkdirSync(Path.dirname(out), { recursive: true })
  Fs.writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        durationSec: Math.round((Date.now() - started) / 1000),
        machine,
        rounds,
        quick,
        eventsPerWrite,
        runner: useTsx ? "tsx" : "compiled",
        sizes,
        summaries,
        startup,
        targets: targets(summaries, startup),
        runs
      },
      null,
      2
    )
  )
  console.error(`\nwrote ${Path.relative(root, out)} after ${Math.round((Date.now() - started) / 1000)} s`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
