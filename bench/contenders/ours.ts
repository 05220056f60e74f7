/**
 * Ours: how a client runs the calls of a workload on an `LLM` layer. Each provider's contender
 * (`oursOpenAI.ts`, `oursAnthropic.ts`, `oursLiteLLM.ts`) imports only its provider's module, as
 * a user does with the package's subpath exports (`@orchestify/providers/OpenAI`); the package
 * entry loads every module (both SDKs, the registry, YAML). Usage is always tracked; the driver
 * checks the tally against what the server sent.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import * as LLM from "../../src/LLM.js"
import * as Message from "../../src/Message.js"
import * as Wire from "../wire.js"
import type { Client, Reply } from "./types.js"
import { TextSink } from "./types.js"

const request = (seq: number, chunks: number): LLM.CompletionRequest => ({
  messages: [Message.user(Wire.prompt(seq, chunks))],
  maxTokens: Wire.maxTokens
})

/** Runs the calls of a workload on the `LLM` of `layer`, and reads its usage tally. */
export const fromLayer = (layer: Layer.Layer<LLM.LLM>): Client => {
  const runtime = ManagedRuntime.make(layer)
  return {
    complete: (seq, chunks) =>
      runtime.runPromise(Effect.map(LLM.complete(request(seq, chunks)), (response): Reply => ({
        text: response.content,
        inputTokens: response.usage.inputTokens,
        outputTokens: response.usage.outputTokens,
        deltas: 1
      }))),
    stream: (seq, chunks) =>
      runtime.runPromise(Effect.suspend(() => {
        const sink = new TextSink()
        let inputTokens = -1
        let outputTokens = -1
        return LLM.stream(request(seq, chunks)).pipe(
          Stream.runForEachChunk((chunk) =>
            Effect.sync(() => {
              for (const event of chunk) {
                if (event._tag === "TextDelta") sink.add(event.text)
                else if (event._tag === "Finish") {
                  inputTokens = event.usage.inputTokens
                  outputTokens = event.usage.outputTokens
                }
              }
            })
          ),
          Effect.map((): Reply => ({ ...sink, inputTokens, outputTokens }))
        )
      })),
    usage: () =>
      runtime.runPromise(Effect.map(LLM.usage, (usage) => ({
        calls: usage.calls,
        failures: usage.failures,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens
      }))),
    close: () => runtime.dispose()
  }
}

/** The layer behind `Resilience.layerRetry()` (the default policy); `Resilience` is loaded only then. */
export const withRetry = async (layer: Layer.Layer<LLM.LLM>): Promise<Layer.Layer<LLM.LLM>> => {
  const Resilience = await import("../../src/Resilience.js")
  return Resilience.layerRetry().pipe(Layer.provide(layer))
}
