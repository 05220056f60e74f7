/**
 * One benchmark client process: one contender, one workload. `run.ts` forks it with
 * `node --import tsx bench/client.ts <job as JSON>`; it sends back one `RunResult`.
 *
 * Start-up is timed from the dynamic import of the contender's libraries to the reply of its first
 * call. Then a small untimed run of the same workload warms the path it measures (so the numbers
 * are steady-state throughput, not JIT compilation; start-up is reported on its own), and the
 * workload is timed alone; what each call received is checked afterwards
 * against what the server sent (`wire.ts`), and so is the library's own usage tally when it keeps
 * one. Peak RSS is the process's `maxRSS`.
 *
 * Job `S` is start-up only, inside an Effect program: the `effect` modules such a program has already
 * loaded (`effectModules`) are imported before the clock starts, then the same start-up is timed and
 * its first reply checked; there is no workload.
 */
import * as Contenders from "./contenders/index.js"
import type { Client, Reply, Totals } from "./contenders/types.js"
import * as Wire from "./wire.js"

/** The four workloads, and `S`: start-up only, inside an Effect program. */
export type Workload = "W1" | "W2" | "W3" | "W4" | "S"

/**
 * The `effect` modules a typical Effect program has already loaded before it builds its client: job `S`
 * imports them before its clock starts, for every contender alike.
 */
export const effectModules: ReadonlyArray<string> = [
  "effect/Effect",
  "effect/Layer",
  "effect/Stream",
  "effect/Schema",
  "effect/ManagedRuntime",
  "effect/Redacted"
]

/** Workload sizes. */
export interface Sizes {
  /** W1: sequential non-streaming calls, and the words in each reply. */
  readonly w1Calls: number
  readonly w1Chunks: number
  /** W2: the chunks of the one stream. */
  readonly w2Chunks: number
  /** W3: concurrent streams, and the chunks of each. */
  readonly w3Streams: number
  readonly w3Chunks: number
  /** W4: concurrent non-streaming calls, and the words in each reply. */
  readonly w4Calls: number
  readonly w4Chunks: number
}

export interface Job {
  readonly contender: string
  readonly workload: Workload
  readonly origin: string
  readonly sizes: Sizes
}

export interface RunResult {
  readonly contender: string
  readonly workload: Workload
  /** Every call succeeded and everything received matched what the server sent. */
  readonly ok: boolean
  /** Calls that failed. */
  readonly failed: number
  /** Replies (or usage tallies) that did not match, with the first few problems. */
  readonly wrong: number
  readonly problems: ReadonlyArray<string>
  readonly importMs: number
  /** Import of the libraries to the reply of the first call. */
  readonly startupMs: number
  /** The workload alone (`NaN` for `S`, which has none; as for `cpuMs` and `maxRssMb`). */
  readonly totalMs: number
  /** CPU time (user + system) of the client process during the workload, and during start-up. */
  readonly cpuMs: number
  readonly startupCpuMs: number
  /** W1: mean time per call. */
  readonly perCallMs?: number | undefined
  /** Streams: text chunks received per second, over the whole workload. */
  readonly chunksPerSec?: number | undefined
  /** W2: time to first and to last chunk. */
  readonly ttfcMs?: number | undefined
  readonly ttlcMs?: number | undefined
  /** Peak resident set size of the client process, MB. */
  readonly maxRssMb: number
  /** Resident set size after start-up, MB. */
  readonly startRssMb: number
  /** The library's own usage tally matched the sum of what the server reported (when it keeps one). */
  readonly usageChecked: boolean
}

interface Expected {
  readonly seq: number
  readonly chunks: number
}

const cpuMsSince = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1000
}

const mb = (bytes: number) => Math.round((bytes / (1024 * 1024)) * 10) / 10

interface Checked {
  readonly wrong: number
  readonly problems: ReadonlyArray<string>
  readonly usageChecked: boolean
}

/**
 * Checks every reply against what the server sent for its call, and the library's usage tally (when it
 * keeps one) against the sum of what the server reported. `replies[i]` answers `calls[i]`; `undefined`
 * is a failed call (already counted in `failed`, its error in `errors`).
 */
const check = async (
  client: Client,
  calls: ReadonlyArray<Expected>,
  replies: ReadonlyArray<Reply | undefined>,
  errors: ReadonlyArray<string>,
  failed: number
): Promise<Checked> => {
  let wrong = 0
  const problems: Array<string> = [...errors]
  const problem = (message: string) => {
    wrong++
    if (problems.length < 5) problems.push(message)
  }
  const sum = { inputTokens: 0, outputTokens: 0 }
  calls.forEach((call, index) => {
    const reply = replies[index]
    const usage = Wire.usage(call.seq, call.chunks)
    sum.inputTokens += usage.inputTokens
    sum.outputTokens += usage.outputTokens
    if (reply === undefined) return
    const expected = Wire.text(call.seq, call.chunks)
    if (reply.text !== expected) {
      let at = 0
      while (at < expected.length && reply.text[at] === expected[at]) at++
      problem(
        `seq ${call.seq}: text differs at ${at} (got ${reply.text.length} chars, want ${expected.length}): ` +
          `${JSON.stringify(reply.text.slice(at, at + 40))} vs ${JSON.stringify(expected.slice(at, at + 40))}`
      )
    }
    if (reply.inputTokens !== usage.inputTokens || reply.outputTokens !== usage.outputTokens) {
      problem(
        `seq ${call.seq}: usage ${reply.inputTokens}/${reply.outputTokens}, want ${usage.inputTokens}/${usage.outputTokens}`
      )
    }
  })
  let usageChecked = false
  if (client.usage !== undefined) {
    const totals: Totals = await client.usage()
    usageChecked = true
    if (
      totals.calls !== calls.length || totals.failures !== failed || totals.inputTokens !== sum.inputTokens ||
      totals.outputTokens !== sum.outputTokens
    ) {
      problem(
        `usage tally: ${totals.calls} calls (${totals.failures} failed), ${totals.inputTokens}/${totals.outputTokens} ` +
          `tokens; want ${calls.length} calls (${failed} failed), ${sum.inputTokens}/${sum.outputTokens}`
      )
    }
  }
  return { wrong, problems, usageChecked }
}

const run = async (job: Job): Promise<RunResult> => {
  const contender = Contenders.byId(job.contender)
  if (contender === undefined) throw new Error(`unknown contender ${job.contender}`)
  const { sizes } = job

  // S: an Effect program has these loaded before it builds its client; untimed, before the clock starts.
  if (job.workload === "S") {
    for (const module of effectModules) await import(module)
  }

  // Start-up: import the libraries, build the client, make the first call.
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const make = await contender.load()
  const importMs = performance.now() - t0
  const client: Client = await make(job.origin)
  const calls: Array<Expected> = [{ seq: 0, chunks: 4 }]
  const warm = await client.complete(0, 4)
  const startupMs = performance.now() - t0
  const startupCpuMs = cpuMsSince(cpu0)
  const startRssMb = mb(process.memoryUsage().rss)

  if (job.workload === "S") {
    // Start-up only: check the first reply (and the usage tally), no workload.
    const checked = await check(client, calls, [warm], [], 0)
    await client.close()
    return {
      contender: job.contender,
      workload: job.workload,
      ok: checked.wrong === 0,
      failed: 0,
      wrong: checked.wrong,
      problems: checked.problems,
      importMs,
      startupMs,
      totalMs: Number.NaN,
      cpuMs: Number.NaN,
      startupCpuMs,
      maxRssMb: Number.NaN,
      startRssMb,
      usageChecked: checked.usageChecked
    }
  }

  const replies: Array<Reply | undefined> = [warm]
  const errors: Array<string> = []
  let failed = 0
  const attempt = async (promise: Promise<Reply>): Promise<Reply | undefined> => {
    try {
      return await promise
    } catch (error) {
      failed++
      if (errors.length < 3) errors.push(`failed: ${String(error).slice(0, 300)}`)
      return undefined
    }
  }

  // Warm-up: a tenth-size run of the same workload, untimed; its replies are checked too.
  const warmSeq = 1_000_000
  switch (job.workload) {
    case "W1":
    case "W4": {
      const pending: Array<Promise<Reply | undefined>> = []
      for (let i = 0; i < 100; i++) {
        calls.push({ seq: warmSeq + i, chunks: sizes.w1Chunks })
        const call = attempt(client.complete(warmSeq + i, sizes.w1Chunks))
        if (job.workload === "W1") replies.push(await call)
        else pending.push(call)
      }
      replies.push(...await Promise.all(pending))
      break
    }
    case "W2": {
      const chunks = Math.max(1, Math.round(sizes.w2Chunks / 10))
      calls.push({ seq: warmSeq, chunks })
      replies.push(await attempt(client.stream(warmSeq, chunks)))
      break
    }
    case "W3": {
      const pending: Array<Promise<Reply | undefined>> = []
      const chunks = Math.max(1, Math.round(sizes.w3Chunks / 10))
      for (let i = 0; i < Math.max(1, Math.round(sizes.w3Streams / 10)); i++) {
        calls.push({ seq: warmSeq + i, chunks })
        pending.push(attempt(client.stream(warmSeq + i, chunks)))
      }
      replies.push(...await Promise.all(pending))
      break
    }
  }

  let totalMs = 0
  let perCallMs: number | undefined = undefined
  let chunksPerSec: number | undefined = undefined
  let ttfcMs: number | undefined = undefined
  let ttlcMs: number | undefined = undefined
  const cpu1 = process.cpuUsage()
  const start = performance.now()
  switch (job.workload) {
    case "W1": {
      for (let seq = 1; seq <= sizes.w1Calls; seq++) {
        calls.push({ seq, chunks: sizes.w1Chunks })
        replies.push(await attempt(client.complete(seq, sizes.w1Chunks)))
      }
      totalMs = performance.now() - start
      perCallMs = totalMs / sizes.w1Calls
      break
    }
    case "W2": {
      calls.push({ seq: 1, chunks: sizes.w2Chunks })
      const reply = await attempt(client.stream(1, sizes.w2Chunks))
      totalMs = performance.now() - start
      replies.push(reply)
      chunksPerSec = sizes.w2Chunks / (totalMs / 1000)
      if (reply?.firstAt !== undefined) ttfcMs = reply.firstAt - start
      if (reply?.lastAt !== undefined) ttlcMs = reply.lastAt - start
      break
    }
    case "W3": {
      const pending: Array<Promise<Reply | undefined>> = []
      for (let seq = 1; seq <= sizes.w3Streams; seq++) {
        calls.push({ seq, chunks: sizes.w3Chunks })
        pending.push(attempt(client.stream(seq, sizes.w3Chunks)))
      }
      replies.push(...await Promise.all(pending))
      totalMs = performance.now() - start
      chunksPerSec = (sizes.w3Streams * sizes.w3Chunks) / (totalMs / 1000)
      break
    }
    case "W4": {
      const pending: Array<Promise<Reply | undefined>> = []
      for (let seq = 1; seq <= sizes.w4Calls; seq++) {
        calls.push({ seq, chunks: sizes.w4Chunks })
        pending.push(attempt(client.complete(seq, sizes.w4Chunks)))
      }
      replies.push(...await Promise.all(pending))
      totalMs = performance.now() - start
      break
    }
  }
  const cpuMs = cpuMsSince(cpu1)
  const maxRssMb = mb(process.resourceUsage().maxRSS * 1024)

  // Checks, after the clock stopped.
  const { problems, usageChecked, wrong } = await check(client, calls, replies, errors, failed)
  await client.close()

  return {
    contender: job.contender,
    workload: job.workload,
    ok: failed === 0 && wrong === 0,
    failed,
    wrong,
    problems,
    importMs,
    startupMs,
    totalMs,
    cpuMs,
    startupCpuMs,
    perCallMs,
    chunksPerSec,
    ttfcMs,
    ttlcMs,
    maxRssMb,
    startRssMb,
    usageChecked
  }
}

const main = async () => {
  const arg = process.argv[2]
  if (arg === undefined) throw new Error("usage: client.ts <job as JSON>")
  const result = await run(JSON.parse(arg) as Job)
  if (process.send !== undefined) {
    process.send(result, () => process.exit(0))
  } else {
    console.log(JSON.stringify(result, null, 2))
    process.exit(0)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
