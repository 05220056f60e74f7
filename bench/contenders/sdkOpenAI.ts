/**
 * The raw `openai` SDK (6.x), `maxRetries: 0`: `chat.completions.create`, streamed with
 * `for await` over its own decoder.
 */
import OpenAI from "openai"
import * as Wire from "../wire.js"
import type { Make } from "./types.js"
import { apiKey, TextSink } from "./types.js"

export const make: Make = async (origin) => {
  const client = new OpenAI({ apiKey, baseURL: `${origin}/v1`, maxRetries: 0 })
  const messages = (seq: number, chunks: number) => [{ role: "user" as const, content: Wire.prompt(seq, chunks) }]
  return {
    complete: async (seq, chunks) => {
      const data = await client.chat.completions.create({
        model: Wire.models.openai,
        max_completion_tokens: Wire.maxTokens,
        messages: messages(seq, chunks)
      })
      return {
        text: data.choices[0]?.message.content ?? "",
        inputTokens: data.usage?.prompt_tokens ?? -1,
        outputTokens: data.usage?.completion_tokens ?? -1,
        deltas: 1
      }
    },
    stream: async (seq, chunks) => {
      const stream = await client.chat.completions.create({
        model: Wire.models.openai,
        max_completion_tokens: Wire.maxTokens,
        messages: messages(seq, chunks),
        stream: true,
        stream_options: { include_usage: true }
      })
      const sink = new TextSink()
      let inputTokens = -1
      let outputTokens = -1
      for await (const chunk of stream) {
        const content = chunk.choices[0]?.delta.content
        if (typeof content === "string" && content !== "") sink.add(content)
        if (chunk.usage) {
          inputTokens = chunk.usage.prompt_tokens
          outputTokens = chunk.usage.completion_tokens
        }
      }
      return { ...sink, inputTokens, outputTokens }
    },
    close: async () => {}
  }
}
