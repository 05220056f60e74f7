/**
 * `LLM.make` with a driver written the way a user writes one: the call path, not the driver, does
 * the usage tally (exactly once), "the Finish is the end", and the local checks.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import * as Capabilities from "../src/Capabilities.js"
import * as LLM from "../src/LLM.js"
import * as LLMError from "../src/LLMError.js"
import * as Message from "../src/Message.js"
import type * as Response from "../src/Response.js"
import * as Usage from "../src/Usage.js"

const model = "claude-sonnet-4-5"
const usage = Usage.tokens({ inputTokens: 1000, outputTokens: 100 })
const finish = LLM.finish({ finishReason: "stop", usage, model })
const text = (t: string): Response.StreamEvent => ({ _tag: "TextDelta", text: t })
const request: LLM.CompletionRequest = { messages: [Message.user("Hi")] }

/** A driver with the given replies, counting what it was asked to send. */
const makeDriver = (options: {
  readonly send?: ReadonlyArray<Response.StreamEvent>
  readonly sendStream?: (report: LLM.ReportUsage) => Stream.Stream<Response.StreamEvent, LLMError.LLMError>
  readonly validate?: LLM.Driver["validate"]
}) => {
  const sent = { complete: 0, stream: 0 }
  const driver: LLM.Driver = {
    providerId: "inhouse",
    providerType: "custom",
    defaultModel: model,
    defaultMaxTokens: 512,
    capabilities: Capabilities.forModel,
    validate: options.validate,
    send: () =>
      Effect.sync(() => {
        sent.complete++
        return options.send ?? [text("Hello"), finish]
      }),
    sendStream: (_request, report) =>
      Stream.suspend(() => {
        sent.stream++
        return options.sendStream?.(report) ?? Stream.fromIterable([text("Hel"), text("lo"), finish])
      })
  }
  return { driver, sent }
}

const collect = <E>(stream: Stream.Stream<Response.StreamEvent, E>) =>
  Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

describe("LLM.make with a user-written driver", () => {
  describe("the usage tally: every call that reached the provider, exactly once", () => {
    it.effect("complete and stream are each counted once, priced from the price table", () =>
      Effect.gen(function*() {
        const { driver } = makeDriver({})
        const llm = yield* LLM.make(driver)
        const reply = yield* llm.complete(request)
        expect(reply.content).toBe("Hello")
        expect(reply.providerId).toBe("inhouse")
        expect(reply.costUsd).toBeGreaterThan(0)
        const events = yield* collect(llm.stream(request))
        const end = events[events.length - 1] as Response.Finish
        expect(end.costUsd).toBe(reply.costUsd)
        const tally = yield* llm.usage
        expect(tally.calls).toBe(2)
        expect(tally.failures).toBe(0)
        expect(tally.inputTokens).toBe(2000)
        expect(tally.costUsd).toBeCloseTo(2 * reply.costUsd!, 12)
      }))

    it.effect("a stream that breaks is counted once, with the usage reported before it broke", () =>
      Effect.gen(function*() {
        const cut = new LLMError.ConnectionError({ provider: "inhouse", message: "socket closed" })
        const { driver } = makeDriver({
          sendStream: (report) =>
            Stream.concat(
              Stream.fromEffect(Effect.sync(() => {
                report(Usage.tokens({ inputTokens: 1000 }))
                return text("Hel")
              })),
              Stream.fail(cut)
            )
        })
        const llm = yield* LLM.make(driver)
        const error = yield* Effect.flip(Stream.runDrain(llm.stream(request)))
        expect(error).toBe(cut)
        const tally = yield* llm.usage
        expect(tally.calls).toBe(1)
        expect(tally.failures).toBe(1)
        expect(tally.inputTokens).toBe(1000)
        expect(tally.unmeteredCalls).toBe(0)
      }))

    it.effect("a stream interrupted with Fiber.interrupt is counted once, as a failure", () =>
      Effect.gen(function*() {
        const { driver } = makeDriver({
          sendStream: (report) =>
            Stream.concat(
              Stream.fromEffect(Effect.sync(() => {
                report(Usage.tokens({ inputTokens: 10 }))
                return text("Hel")
              })),
              Stream.never
            )
        })
        const llm = yield* LLM.make(driver)
        const fiber = yield* Effect.fork(Stream.runDrain(llm.stream(request)))
        for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        const tally = yield* llm.usage
        expect(tally.calls).toBe(1)
        expect(tally.failures).toBe(1)
        expect(tally.inputTokens).toBe(10)
      }))
  })

  describe("the Finish is the end", () => {
    it.effect("events after the Finish of a batch are dropped, the Finish is priced, the driver is not read again", () =>
      Effect.gen(function*() {
        let pulledAfterFinish = false
        const { driver } = makeDriver({
          sendStream: () =>
            Stream.concat(
              Stream.fromChunk(Chunk.make(text("Hello"), finish, text(" AFTER THE END"))),
              Stream.fromEffect(Effect.sync(() => {
                pulledAfterFinish = true
                return text(" and more")
              }))
            )
        })
        const llm = yield* LLM.make(driver)
        const events = yield* collect(llm.stream(request))
        expect(events.map((event) => event._tag)).toEqual(["TextDelta", "Finish"])
        expect((events[1] as Response.Finish).costUsd).toBeGreaterThan(0)
        expect(pulledAfterFinish).toBe(false)
        expect((yield* llm.usage).calls).toBe(1)
      }))

    it.effect("complete: events after the Finish are dropped", () =>
      Effect.gen(function*() {
        const { driver } = makeDriver({ send: [text("Hello"), finish, text(" AFTER THE END")] })
        const llm = yield* LLM.make(driver)
        const reply = yield* llm.complete(request)
        expect(reply.content).toBe("Hello")
        expect(reply.costUsd).toBeGreaterThan(0)
      }))

    it.effect("a reply without a Finish fails with MalformedResponseError (complete and stream), counted as a failed call", () =>
      Effect.gen(function*() {
        const { driver } = makeDriver({ send: [text("Hello")], sendStream: () => Stream.make(text("Hello")) })
        const llm = yield* LLM.make(driver)
        const completed = yield* Effect.flip(llm.complete(request))
        expect(completed._tag).toBe("MalformedResponseError")
        const streamed = yield* Effect.flip(Stream.runDrain(llm.stream(request)))
        expect(streamed._tag).toBe("MalformedResponseError")
        const tally = yield* llm.usage
        expect(tally.calls).toBe(2)
        expect(tally.failures).toBe(2)
      }))
  })

  describe("local checks", () => {
    it.effect("the driver's validate refuses before any request: nothing sent, nothing counted", () =>
      Effect.gen(function*() {
        const refusal = new LLMError.InvalidRequestError({ provider: "inhouse", message: "no images here" })
        const { driver, sent } = makeDriver({ validate: () => refusal })
        const llm = yield* LLM.make(driver)
        expect(yield* Effect.flip(llm.complete(request))).toBe(refusal)
        expect(yield* Effect.flip(Stream.runDrain(llm.stream(request)))).toBe(refusal)
        expect(sent).toEqual({ complete: 0, stream: 0 })
        expect((yield* llm.usage).calls).toBe(0)
      }))

    it.effect("input that cannot be sent as JSON (a BigInt in tool parameters) is refused by LLM.make itself", () =>
      Effect.gen(function*() {
        const { driver, sent } = makeDriver({})
        const llm = yield* LLM.make(driver)
        const bad: LLM.CompletionRequest = {
          ...request,
          tools: [{ name: "count", parameters: { type: "object", properties: { n: { maximum: BigInt(1) as any } } } }]
        }
        const error = yield* Effect.flip(llm.complete(bad))
        expect(error._tag).toBe("InvalidRequestError")
        expect(sent.complete).toBe(0)
        expect((yield* llm.usage).calls).toBe(0)
      }))

    it.effect("defaults: a request without model or maxTokens gets the driver's", () =>
      Effect.gen(function*() {
        let seen: LLM.ResolvedRequest | undefined
        const { driver } = makeDriver({})
        const llm = yield* LLM.make({
          ...driver,
          send: (resolved, report) => {
            seen = resolved
            return driver.send(resolved, report)
          }
        })
        yield* llm.complete(request)
        expect(seen?.model).toBe(model)
        expect(seen?.maxTokens).toBe(512)
      }))
  })
})

describe("docs/examples/custom-provider.ts", () => {
  it("runs (the example of docs/writing-a-provider.md)", async () => {
    const root = Path.join(import.meta.dirname, "..")
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      ChildProcess.execFile(
        process.execPath,
        ["--import", "tsx", Path.join(root, "docs", "examples", "custom-provider.ts")],
        { cwd: root, timeout: 20_000 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number | null), stdout, stderr })
      )
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("custom provider: 2 calls")
  }, 30_000)
})
