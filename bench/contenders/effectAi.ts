/**
 * `@effect/ai` 0.37 with its OpenAI (0.41, the Responses API) and Anthropic (0.27) providers, over
 * `FetchHttpClient`, as its documentation sets them up.
 */
import * as AnthropicClient from "@effect/ai-anthropic/AnthropicClient"
import * as AnthropicLanguageModel from "@effect/ai-anthropic/AnthropicLanguageModel"
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as OpenAiLanguageModel from "@effect/ai-openai/OpenAiLanguageModel"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as AiResponse from "@effect/ai/Response"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Wire from "../wire.js"
import type { Client, Make, Reply } from "./types.js"
import { apiKey, TextSink } from "./types.js"

const fromLayer = (layer: Layer.Layer<LanguageModel.LanguageModel>): Client => {
  const runtime = ManagedRuntime.make(layer)
  return {
    complete: (seq, chunks) =>
      runtime.runPromise(
        Effect.map(LanguageModel.generateText({ prompt: Wire.prompt(seq, chunks) }), (response): Reply => ({
          text: response.text,
          inputTokens: response.usage.inputTokens ?? -1,
          outputTokens: response.usage.outputTokens ?? -1,
          deltas: 1
        }))
      ),
    stream: (seq, chunks) =>
      runtime.runPromise(Effect.suspend(() => {
        const sink = new TextSink()
        let inputTokens = -1
        let outputTokens = -1
        return LanguageModel.streamText({ prompt: Wire.prompt(seq, chunks) }).pipe(
          Stream.runForEachChunk((chunk) =>
            Effect.sync(() => {
              for (const part of chunk as Iterable<AiResponse.AnyPart>) {
                if (part.type === "text-delta") sink.add(part.delta)
                else if (part.type === "finish") {
                  inputTokens = part.usage.inputTokens ?? -1
                  outputTokens = part.usage.outputTokens ?? -1
                }
              }
            })
          ),
          Effect.map((): Reply => ({ ...sink, inputTokens, outputTokens }))
        )
      })),
    close: () => runtime.dispose()
  }
}

/** `OpenAiLanguageModel` (Responses API). */
export const openai: Make = async (origin) =>
  fromLayer(
    OpenAiLanguageModel.layer({ model: Wire.models.openai, config: { max_output_tokens: Wire.maxTokens } }).pipe(
      Layer.provide(OpenAiClient.layer({ apiKey: Redacted.make(apiKey), apiUrl: `${origin}/v1` })),
      Layer.provide(FetchHttpClient.layer)
    )
  )

/** `AnthropicLanguageModel` (Messages API). */
export const anthropic: Make = async (origin) =>
  fromLayer(
    AnthropicLanguageModel.layer({ model: Wire.models.anthropic, config: { max_tokens: Wire.maxTokens } }).pipe(
      Layer.provide(AnthropicClient.layer({ apiKey: Redacted.make(apiKey), apiUrl: origin })),
      Layer.provide(FetchHttpClient.layer)
    )
  )
