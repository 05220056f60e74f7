/**
 * The raw `@anthropic-ai/sdk` (1.x), `maxRetries: 0`: `messages.create`, streamed with
 * `for await` over its raw events.
 */
import Anthropic from "@anthropic-ai/sdk"
import * as Wire from "../wire.js"
import type { Make } from "./types.js"
import { apiKey, TextSink } from "./types.js"

export const make: Make = async (origin) => {
  const client = new Anthropic({ apiKey, baseURL: origin, maxRetries: 0 })
  const messages = (seq: number, chunks: number) => [{ role: "user" as const, content: Wire.prompt(seq, chunks) }]
  return {
    complete: async (seq, chunks) => {
      const message = await client.messages.create({
        model: Wire.models.anthropic,
        max_tokens: Wire.maxTokens,
        messages: messages(seq, chunks)
      })
      let text = ""
      for (const block of message.content) if (block.type === "text") text += block.text
      return { text, inputTokens: message.usage.input_tokens, outputTokens: message.usage.output_tokens, deltas: 1 }
    },
    stream: async (seq, chunks) => {
      const stream = await client.messages.create({
        model: Wire.models.anthropic,
        max_tokens: Wire.maxTokens,
        messages: messages(seq, chunks),
        stream: true
      })
      const sink = new TextSink()
      let inputTokens = -1
      let outputTokens = -1
      for await (const event of stream) {
        switch (event.type) {
          case "content_block_delta":
            if (event.delta.type === "text_delta") sink.add(event.delta.text)
            break
          case "message_start":
            inputTokens = event.message.usage.input_tokens
            outputTokens = event.message.usage.output_tokens
            break
          case "message_delta":
            outputTokens = event.usage.output_tokens
            break
        }
      }
      return { ...sink, inputTokens, outputTokens }
    },
    close: async () => {}
  }
}
