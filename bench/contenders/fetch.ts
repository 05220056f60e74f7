/**
 * The floor: `fetch` and a minimal linear SSE parser (split on blank lines, read the `data:`
 * lines), no validation beyond what the check needs.
 */
import * as Wire from "../wire.js"
import type { Client, Make, Reply } from "./types.js"
import { apiKey, TextSink } from "./types.js"

/** Calls `onData` with the `data` of each SSE event of a body, linear in its size. */
const readSse = async (body: ReadableStream<Uint8Array>, onData: (data: string) => void): Promise<void> => {
  const decoder = new TextDecoder()
  let buffer = ""
  for await (const bytes of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true })
    let start = 0
    let end: number
    while ((end = buffer.indexOf("\n\n", start)) !== -1) {
      let line = start
      while (line < end) {
        let eol = buffer.indexOf("\n", line)
        if (eol === -1 || eol > end) eol = end
        if (buffer.startsWith("data: ", line)) onData(buffer.slice(line + 6, eol))
        line = eol + 1
      }
      start = end + 2
    }
    buffer = buffer.slice(start)
  }
}

const post = async (url: string, headers: Record<string, string>, body: unknown): Promise<Response> => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })
  if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}: ${await response.text()}`)
  return response
}

/** Chat Completions over `fetch`. */
export const openai: Make = async (origin) => {
  const url = `${origin}/v1/chat/completions`
  const headers = { authorization: `Bearer ${apiKey}` }
  const body = (seq: number, chunks: number) => ({
    model: Wire.models.openai,
    max_completion_tokens: Wire.maxTokens,
    messages: [{ role: "user", content: Wire.prompt(seq, chunks) }]
  })
  const client: Client = {
    complete: async (seq, chunks): Promise<Reply> => {
      const data: any = await (await post(url, headers, body(seq, chunks))).json()
      return {
        text: data.choices[0].message.content,
        inputTokens: data.usage.prompt_tokens,
        outputTokens: data.usage.completion_tokens,
        deltas: 1
      }
    },
    stream: async (seq, chunks): Promise<Reply> => {
      const response = await post(url, headers, {
        ...body(seq, chunks),
        stream: true,
        stream_options: { include_usage: true }
      })
      const sink = new TextSink()
      let usage: any = undefined
      await readSse(response.body!, (data) => {
        if (data === "[DONE]") return
        const json = JSON.parse(data)
        const content = json.choices[0]?.delta?.content
        if (typeof content === "string" && content !== "") sink.add(content)
        if (json.usage) usage = json.usage
      })
      return { ...sink, inputTokens: usage?.prompt_tokens ?? -1, outputTokens: usage?.completion_tokens ?? -1 }
    },
    close: async () => {}
  }
  return client
}

/** Anthropic Messages over `fetch`. */
export const anthropic: Make = async (origin) => {
  const url = `${origin}/v1/messages`
  const headers = { "x-api-key": apiKey, "anthropic-version": "2023-06-01" }
  const body = (seq: number, chunks: number) => ({
    model: Wire.models.anthropic,
    max_tokens: Wire.maxTokens,
    messages: [{ role: "user", content: Wire.prompt(seq, chunks) }]
  })
  const client: Client = {
    complete: async (seq, chunks): Promise<Reply> => {
      const data: any = await (await post(url, headers, body(seq, chunks))).json()
      let text = ""
      for (const block of data.content) if (block.type === "text") text += block.text
      return { text, inputTokens: data.usage.input_tokens, outputTokens: data.usage.output_tokens, deltas: 1 }
    },
    stream: async (seq, chunks): Promise<Reply> => {
      const response = await post(url, headers, { ...body(seq, chunks), stream: true })
      const sink = new TextSink()
      let inputTokens = -1
      let outputTokens = -1
      await readSse(response.body!, (data) => {
        const json = JSON.parse(data)
        switch (json.type) {
          case "content_block_delta":
            if (json.delta.type === "text_delta") sink.add(json.delta.text)
            break
          case "message_start":
            inputTokens = json.message.usage.input_tokens
            outputTokens = json.message.usage.output_tokens
            break
          case "message_delta":
            outputTokens = json.usage.output_tokens
            break
        }
      })
      return { ...sink, inputTokens, outputTokens }
    },
    close: async () => {}
  }
  return client
}
