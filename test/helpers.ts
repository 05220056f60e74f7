/**
 * Helpers shared by the test files: real-time pauses and guards that TestClock cannot freeze,
 * polling of the fake server, and small stream and reply builders.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"

const { Reply } = FakeProviderServer

/**
 * A real pause (1 ms unless told), letting I/O progress while a test polls (TestClock freezes
 * Effect's own sleeps).
 */
export const realPause = (millis = 1): Effect.Effect<void> =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/** `n` real 1 ms pauses. */
export const realPauses = (n: number): Effect.Effect<void> => Effect.replicateEffect(realPause(), n, { discard: true })

/**
 * Fails the test (a defect naming `what`) when `effect` has not ended after `millis` of real time.
 * Unlike `Effect.timeout`, it runs on a real timer: TestClock (in `it.effect` / `it.scoped`) does
 * not freeze it, so a hang fails fast with a message instead of at the runner's timeout.
 */
export const withinRealTime = (millis: number, what: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.raceFirst(
    effect,
    Effect.async<never>((resume) => {
      const timer = setTimeout(
        () => resume(Effect.dieMessage(`${what}: not done after ${millis} ms of real time`)),
        millis
      )
      return Effect.sync(() => clearTimeout(timer))
    })
  )

/**
 * Polls `check` with real pauses until it holds; fails the test (naming `what`) if it does not
 * within `millis` of real time.
 */
export const awaitTrue = (check: Effect.Effect<boolean>, what: string, millis = 3_000): Effect.Effect<void> =>
  Effect.repeat(Effect.zipLeft(check, realPause()), { until: (done) => done }).pipe(
    Effect.asVoid,
    withinRealTime(millis, what)
  )

/** Waits (in real time, at most 3 s) until the server has received `count` requests. */
export const awaitRequests = (server: FakeProviderServer.Service, count: number): Effect.Effect<void> =>
  awaitTrue(Effect.map(server.requests, (requests) => requests.length >= count), `${count} request(s) at the server`)

/** Waits (in real time, at most 3 s) until a fiber sleeps until `at` on the TestClock. */
export const awaitSleepAt = (at: number): Effect.Effect<void> =>
  awaitTrue(Effect.map(TestClock.sleeps(), Chunk.some((wake) => wake === at)), `a sleep until ${at} on the TestClock`)

/** A request with one user message, and any other fields given. */
export const ask = (text: string, extra: Partial<LLM.CompletionRequest> = {}): LLM.CompletionRequest => ({
  messages: [Message.user(text)],
  ...extra
})

/** Every element of a stream, as an array. */
export const events = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<ReadonlyArray<A>, E, R> =>
  Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

/** An error reply in the protocol's own format (Anthropic's `{ type: "error", error }` or OpenAI's `{ error }`). */
export const providerError = (protocol: FakeProviderServer.Protocol) =>
(
  status: number,
  kind: { readonly anthropic: string; readonly openai: { readonly type: string; readonly code?: string } },
  message: string,
  headers?: Record<string, string>
): FakeProviderServer.Reply =>
  protocol === "anthropic"
    ? Reply.anthropicError(status, kind.anthropic, message, headers)
    : Reply.openaiError(status, { message, ...kind.openai }, headers)
