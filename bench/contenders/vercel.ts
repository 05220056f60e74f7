/**
 * The Vercel AI SDK (`ai` 6) with `@ai-sdk/openai` (Chat Completions, `openai.chat`) and
 * `@ai-sdk/anthropic`, `maxRetries: 0`.
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { createOpenAI } from "@ai-sdk/openai"
import type { LanguageModel } from "ai"
import { generateText, streamText } from "ai"
import * as Wire from "../wire.js"
import type { Client, Make } from "./types.js"
import { apiKey, TextSink } from "./types.js"

const fromModel = (model: LanguageModel): Client => ({
  complete: async (seq, chunks) => {
    const result = await generateText({
      model,
      prompt: Wire.prompt(seq, chunks),
      maxOutputTokens: Wire.maxTokens,
      maxRetries: 0
    })
    return {
      text: result.text,
      inputTokens: result.usage.inputTokens ?? -1,
      outputTokens: result.usage.outputTokens ?? -1,
      deltas: 1
    }
  },
  stream: async (seq, chunks) => {
    let failure: unknown = undefined
    const result = streamText({
      model,
      prompt: Wire.prompt(seq, chunks),
      maxOutputTokens: Wire.maxTokens,
      maxRetries: 0,
      onError: ({ error }) => {
        failure = error
      }
    })
    const sink = new TextSink()
    for await (const piece of result.textStream) sink.add(piece)
    if (failure !== undefined) throw failure
    const usage = await result.usage
    return { ...sink, inputTokens: usage.inputTokens ?? -1, outputTokens: usage.outputTokens ?? -1 }
  },
  close: async () => {}
})

/** `openai.chat("gpt-4o")`. */
export const openai: Make = async (origin) =>
  fromModel(createOpenAI({ apiKey, baseURL: `${origin}/v1` }).chat(Wire.models.openai))

/** `anthropic("claude-sonnet-4-5")`. */
export const anthropic: Make = async (origin) =>
  fromModel(createAnthropic({ apiKey, baseURL: `${origin}/v1` })(Wire.models.anthropic))
