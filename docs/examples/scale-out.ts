/**
 * The code of docs/scale-out.md: several worker processes sharing one rate limit on Redis. Run it
 * with `npx tsx docs/examples/scale-out.ts` (it needs `redis-server` on PATH, or `REDIS_SERVER`):
 * it starts a redis-server of its own on a free port, the bundled `FakeProviderServer`, and 3
 * worker processes of this same file, each sending 10 calls through `RateLimit` with a shared
 * limit of 12 requests per minute. The fake server's own request log is the truth: exactly 12.
 */
import { Duration, Effect, Exit, Layer, Redacted } from "effect"
import * as assert from "node:assert/strict"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { LLM, Message, OpenAI, RateLimit, SharedState } from "../../src/index.js"
import { FakeProviderServer } from "../../src/testing/index.js"

// #region worker
/** One worker: its own Redis connection, its own provider, the limit shared through the store. */
const worker = (redisUrl: string, baseUrl: string) =>
  Effect.gen(function*() {
    const llm = yield* LLM.LLM
    const exits = yield* Effect.forEach(
      Array.from({ length: 10 }, (_, i) => i),
      (i) => Effect.exit(llm.complete({ messages: [Message.user(`call ${i}`)], maxTokens: 16 })),
      { concurrency: 2 }
    )
    return exits.filter(Exit.isSuccess).length
  }).pipe(
    Effect.provide(
      RateLimit.layer({ limits: { openai: { rpm: 12 } }, maxWait: 0 }).pipe(
        Layer.provide(OpenAI.layer({ apiKey: Redacted.make("sk-demo"), baseUrl, defaultModel: "gpt-4o-mini" })),
        Layer.provide(SharedState.layerRedis({ url: Redacted.make(redisUrl), namespace: "demo" }))
      )
    )
  )
// #endregion

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = Net.createServer().listen(0, "127.0.0.1", () => {
      const address = server.address() as Net.AddressInfo
      server.close(() => resolve(address.port))
    })
  })

const main = Effect.gen(function*() {
  // A redis-server of our own, no persistence (a demo).
  const port = yield* Effect.promise(freePort)
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "orx-demo-"))
  const redis = yield* Effect.acquireRelease(
    Effect.sync(() =>
      ChildProcess.spawn(process.env["REDIS_SERVER"] ?? "redis-server", [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir
      ], { stdio: "ignore" })
    ),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )
  redis.on("error", (error) => console.error(`cannot start redis-server: ${error.message}`))
  yield* Effect.sleep(Duration.millis(300))
  const server = yield* FakeProviderServer.FakeProviderServer

  // #region workers
  // Three processes, one limit: 12 requests per minute between them.
  const run = () =>
    new Promise<number>((resolve, reject) => {
      const child = ChildProcess.execFile(
        process.execPath,
        ["--import", "tsx", import.meta.filename, "worker", `redis://127.0.0.1:${port}`, server.openaiBaseUrl],
        (error, stdout) => (error ? reject(error) : resolve(Number(stdout.trim())))
      )
      child.stderr?.pipe(process.stderr)
    })
  const admitted = yield* Effect.promise(() => Promise.all([run(), run(), run()]))
  const requests = yield* server.requests
  console.log(`workers admitted ${admitted.join(" + ")} calls; the provider saw ${requests.length} requests`)
  assert.equal(admitted.reduce((a, b) => a + b, 0), 12)
  assert.equal(requests.length, 12)
  // #endregion
})

if (process.argv[2] === "worker") {
  Effect.runPromise(worker(process.argv[3]!, process.argv[4]!)).then(
    (n) => console.log(n),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
} else {
  Effect.runPromise(Effect.scoped(Effect.provide(main, FakeProviderServer.layer()))).catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
