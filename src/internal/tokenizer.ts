/**
 * Local token counting (no request): the estimate for models without a known tokenizer.
 *
 * The estimate: UTF-8 bytes / 3 for every piece of text (system prompt, message text, tool
 * calls and results, thinking, tool definitions as JSON), plus a per-message, per-tool and
 * per-image overhead. Modern BPE vocabularies average about 4 bytes per token on English prose and
 * code, so the estimate errs high by roughly a third there; it is not a strict bound.
 */
import type * as LLM from "../LLM.js"
import type * as Tokens from "../Tokens.js"

/** The UTF-8 length of a string, without allocating. */
export const utf8Length = (text: string): number => {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) continue
    if (code < 0x800) bytes += 1
    else if (code >= 0xd800 && code < 0xdc00) {
      // A surrogate pair: 4 bytes for 2 UTF-16 units.
      bytes += 2
      i++
    } else bytes += 2
  }
  return bytes
}

/** Tokens of the estimate for an image (Claude bills at most about 1,600 for an image it does not downscale). */
export const estimateImageTokens = 1_600
/** Tokens of the estimate's framing for each message (role and separators). */
export const estimateMessageOverhead = 5
/** Tokens of the estimate's framing for each tool definition. */
export const estimateToolOverhead = 10
/** Tokens of the estimate's framing for the whole request (reply priming). */
export const estimateRequestOverhead = 5

const bytesOver3 = (text: string): number => Math.ceil(utf8Length(text) / 3)

const json = (value: unknown): string => JSON.stringify(value) ?? ""

/** The estimate of a request's prompt tokens. */
export const estimate = (request: LLM.CompletionRequest): number => {
  let tokens = estimateRequestOverhead
  if (request.system !== undefined && request.system.length > 0) {
    tokens += estimateMessageOverhead + bytesOver3(request.system)
  }
  for (const message of request.messages) {
    tokens += estimateMessageOverhead
    for (const part of message.content) {
      switch (part._tag) {
        case "Text":
          tokens += bytesOver3(part.text)
          break
        case "Image":
          tokens += estimateImageTokens
          break
        case "ToolCall":
          tokens += estimateMessageOverhead + bytesOver3(part.id) + bytesOver3(part.name) + bytesOver3(json(part.input))
          break
        case "ToolResult":
          tokens += estimateMessageOverhead + bytesOver3(part.toolCallId) + bytesOver3(part.content)
          break
        case "Thinking":
          tokens += bytesOver3(part.thinking)
          break
        case "RedactedThinking":
          tokens += bytesOver3(part.data)
          break
      }
    }
  }
  if (request.tools !== undefined) {
    for (const tool of request.tools) {
      tokens += estimateToolOverhead + bytesOver3(tool.name) + bytesOver3(tool.description ?? "") +
        bytesOver3(json(tool.parameters))
    }
  }
  return tokens
}

/** The local count of a request: a tokenizer where the model's encoding is known, else the estimate. */
export const countLocal = (request: LLM.ResolvedRequest): Tokens.TokenCount => ({
  inputTokens: estimate(request),
  method: "estimate"
})
