/**
 * The code of docs/writing-a-provider.md: a tiny in-house provider built with `LLM.make`.
 *
 * The "backend" is an echo service (it answers with the last user message, word by word), so the
 * example needs no network and no API key: `npx tsx docs/examples/custom-provider.ts`. A real
 * driver sends an HTTP request where `echoBackend` is called, and maps the provider's wire format
 * to the same `StreamEvent`s.
 */
// #region driver
import { Context, Effect, Layer, Stream } from "effect"
import * as assert from "node:assert/strict"
import { Capabilities, LLM, LLMError, Message, Usage } from "../../src/index.js"
import type { Response } from "../../src/index.js"

/** What the in-house backend answers: words, then its own usage report. */
interface EchoReply {
  readonly words: ReadonlyArray<string>
  readonly promptTokens: number
}

/** The backend (a real driver sends an HTTP request here, with the fiber's AbortSignal). */
const echoBackend = (request: LLM.ResolvedRequest): Effect.Effect<EchoReply, LLMError.LLMError> => {
  const last = request.messages[request.messages.length - 1]
  const text = last?.content.map((part) => (part._tag === "Text" ? part.text : "")).join("") ?? ""
  return Effect.succeed({ words: text.split(/(?<= )/), promptTokens: text.length })
}

/** The end of the reply, in the neutral form: `LLM.make` prices it. */
const finishOf = (request: LLM.ResolvedRequest, reply: EchoReply): Response.Finish =>
  LLM.finish({
    finishReason: "stop",
    rawFinishReason: "echoed",
    usage: Usage.tokens({ inputTokens: reply.promptTokens, outputTokens: reply.words.length }),
    model: request.model
  })

/** The driver: it only sends and maps the reply to `StreamEvent`s. */
const driver: LLM.Driver = {
  providerId: "echo",
  providerType: "custom",
  defaultModel: "echo-1",
  defaultMaxTokens: 256,
  capabilities: () => Capabilities.unknown,
  // A price for our own model (per million tokens), so calls are costed rather than "unpriced".
  pricing: { "echo-1": { input: 1, output: 2 } },
  // Local checks: refused before any request, counted in no usage.
  validate: (request) =>
    request.messages.length === 0
      ? new LLMError.InvalidRequestError({ provider: "echo", message: "echo: nothing to echo" })
      : undefined,
  send: (request) =>
    Effect.map(echoBackend(request), (reply) => [
      { _tag: "TextDelta", text: reply.words.join("") },
      finishOf(request, reply)
    ]),
  sendStream: (request, report) =>
    Stream.unwrap(Effect.map(echoBackend(request), (reply) => {
      // The backend reports the prompt's usage up front: if the stream breaks later, this is billed.
      report(Usage.tokens({ inputTokens: reply.promptTokens }))
      return Stream.concat(
        Stream.fromIterable(reply.words.map((text): Response.StreamEvent => ({ _tag: "TextDelta", text }))),
        Stream.succeed(finishOf(request, reply))
      )
    }))
}

/** The provider's own tag, and its layer: it provides both `Echo` and `LLM.LLM`. */
class Echo extends Context.Tag("example/Echo")<Echo, LLM.Service>() {}

const layer: Layer.Layer<Echo | LLM.LLM> = Layer.effectContext(
  Effect.map(LLM.make(driver), (llm) => Context.make(Echo, llm).pipe(Context.add(LLM.LLM, llm)))
)
// #endregion

// #region use
const program = Effect.gen(function*() {
  const reply = yield* LLM.complete({ messages: [Message.user("hello from the echo provider")] })
  assert.equal(reply.content, "hello from the echo provider")
  assert.equal(reply.providerId, "echo")
  assert.ok(reply.costUsd !== undefined && reply.costUsd > 0)

  const streamed = yield* Stream.runCollect(LLM.stream({ messages: [Message.user("one two three")] }))
  const events = Array.from(streamed)
  assert.deepEqual(
    events.filter((event) => event._tag === "TextDelta").map((event) => event.text),
    ["one ", "two ", "three"]
  )
  assert.equal(events[events.length - 1]?._tag, "Finish")

  const refused = yield* Effect.flip(LLM.complete({ messages: [] }))
  assert.equal(refused._tag, "InvalidRequestError")

  // Two calls reached the provider (the refused one did not), each counted once.
  const usage = yield* Effect.flatMap(Echo, (echo) => echo.usage)
  assert.equal(usage.calls, 2)
  assert.equal(usage.failures, 0)
  assert.equal(usage.outputTokens, 5 + 3)
  return usage
})
// #endregion

Effect.runPromise(program.pipe(Effect.provide(layer))).then(
  (usage) => console.log(`custom provider: ${usage.calls} calls, $${usage.costUsd.toFixed(6)}`),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
