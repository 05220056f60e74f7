/**
 * Ours, as a user gets it from the package entry: the `OpenAI`, `Anthropic` and `LiteLLM` layers
 * (the last over `FetchHttpClient`), bare or behind `Resilience.layerRetry()`. Usage is always
 * tracked; the driver checks the tally against what the server sent.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { Anthropic, LiteLLM, LLM, Message, OpenAI, Resilience } from "../../src/index.js"
import * as Wire from "../wire.js"
import type { Client, Make, Reply } from "./types.js"
import { apiKey, TextSink } from "./types.js"

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

const key = Redacted.make(apiKey)

/** The layer behind `Resilience.layerRetry()` (the default policy). */
export const withRetry = (layer: Layer.Layer<LLM.LLM>): Layer.Layer<LLM.LLM> =>
  Resilience.layerRetry().pipe(Layer.provide(layer))

const openaiLayer = (origin: string) =>
  OpenAI.layer({ apiKey: key, defaultModel: Wire.models.openai, baseUrl: `${origin}/v1` })

const anthropicLayer = (origin: string) =>
  Anthropic.layer({ apiKey: key, defaultModel: Wire.models.anthropic, baseUrl: origin })

const litellmLayer = (origin: string) =>
  LiteLLM.layer({ apiKey: key, defaultModel: `openai/${Wire.models.openai}`, baseUrl: `${origin}/v1` }).pipe(
    Layer.provide(FetchHttpClient.layer)
  )

/** `OpenAI.layer` (the `openai` SDK sends, our decoder reads). */
export const openai: Make = async (origin) => fromLayer(openaiLayer(origin))

/** `Anthropic.layer` (the Anthropic SDK sends, our decoder reads). */
export const anthropic: Make = async (origin) => fromLayer(anthropicLayer(origin))

/** `LiteLLM.layer` with `openai/gpt-4o` and a base URL, over `FetchHttpClient`. */
export const litellm: Make = async (origin) => fromLayer(litellmLayer(origin))

/** `OpenAI.layer` behind `Resilience.layerRetry()`. */
export const openaiRetry: Make = async (origin) => fromLayer(withRetry(openaiLayer(origin)))

/** `Anthropic.layer` behind `Resilience.layerRetry()`. */
export const anthropicRetry: Make = async (origin) => fromLayer(withRetry(anthropicLayer(origin)))

/** `LiteLLM.layer` behind `Resilience.layerRetry()`. */
export const litellmRetry: Make = async (origin) => fromLayer(withRetry(litellmLayer(origin)))
