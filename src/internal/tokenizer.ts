/**
 * Local token counting (no request): a BPE tokenizer for OpenAI models, an estimate for the rest.
 *
 * The tokenizer (`gpt-tokenizer`, pure JS) is loaded on the first count of an OpenAI model, never
 * at start-up: a program that never counts does not pay its load (about 150 ms). OpenAI chat
 * framing as OpenAI's cookbook documents it ("How to count tokens with tiktoken"): 3 tokens per
 * message plus its role, 3 to prime the reply; tool definitions as the cookbook's
 * `num_tokens_for_tools` (per function 7, or 10 for cl100k models, plus `name:description`; per
 * property 3 plus `key:type:description`; enums; 12 once).
 *
 * The estimate: UTF-8 bytes / 3 for every piece of text (system prompt, message text, tool
 * calls and results, thinking, tool definitions as JSON), plus a per-message, per-tool and
 * per-image overhead, and the largest tool-use system prompt a provider documents when tools are
 * given. Modern BPE vocabularies average about 4 bytes per token on English prose and code, so the
 * estimate errs high by roughly a third there; it is not a strict bound (random strings and some
 * scripts are denser).
 */
import * as Effect from "effect/Effect"
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
/** Tokens of the estimate for the whole request: reply priming and a chat template header (Llama 3 adds a dated system header of about 25 tokens to every prompt). */
export const estimateRequestOverhead = 32
/**
 * Tokens of the estimate for the system prompt a provider adds when tools are given (Anthropic
 * documents up to 530 for its tool use, Claude 3 Opus; 346 for Claude 4 models).
 */
export const estimateToolsPreamble = 550

const bytesOver3 = (text: string): number => Math.ceil(utf8Length(text) / 3)

const json = (value: unknown): string => JSON.stringify(value) ?? ""

/** The JSON length of tool parameters: definitions are usually the same objects call after call. */
const schemaLengths = new WeakMap<object, number>()
const schemaLength = (schema: unknown): number => {
  if (typeof schema !== "object" || schema === null) return json(schema).length
  let length = schemaLengths.get(schema)
  if (length === undefined) {
    length = json(schema).length
    schemaLengths.set(schema, length)
  }
  return length
}

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
  if (request.tools !== undefined && request.tools.length > 0) {
    tokens += estimateToolsPreamble
    for (const tool of request.tools) {
      tokens += estimateToolOverhead + bytesOver3(tool.name) + bytesOver3(tool.description ?? "") +
        bytesOver3(json(tool.parameters))
    }
  }
  return tokens
}

/** Tokens of the upper bound for an image: more than any provider bills for one (Claude, large images: about 4,800). */
export const boundImageTokens = 6_000

/**
 * An upper bound of a request's prompt tokens, with no scan of its text: every BPE token is at
 * least one UTF-8 byte, and a UTF-16 unit at most 3 bytes; framing, images and tool preambles at
 * generous fixed costs. Cheap enough for every call (the context-fit guard's first test).
 */
export const upperBound = (request: LLM.CompletionRequest): number => {
  let units = 0
  let tokens = 1_000
  if (request.system !== undefined) units += request.system.length
  for (const message of request.messages) {
    tokens += 16
    for (const part of message.content) {
      switch (part._tag) {
        case "Text":
          units += part.text.length
          break
        case "Image":
          tokens += boundImageTokens
          break
        case "ToolCall":
          tokens += 16
          units += part.id.length + part.name.length + json(part.input).length
          break
        case "ToolResult":
          tokens += 16
          units += part.toolCallId.length + part.content.length
          break
        case "Thinking":
          units += part.thinking.length
          break
        case "RedactedThinking":
          units += part.data.length
          break
      }
    }
  }
  if (request.tools !== undefined) {
    for (const tool of request.tools) {
      tokens += 32
      units += tool.name.length + (tool.description?.length ?? 0) + schemaLength(tool.parameters)
    }
  }
  return tokens + 3 * units
}

// -----------------------------------------------------------------------------
// OpenAI models: a BPE tokenizer
// -----------------------------------------------------------------------------

/** A BPE encoding of OpenAI models. */
export type Encoding = "o200k_base" | "cl100k_base"

const o200k = /^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-|codex-|computer-use)/
const cl100k = /^(gpt-4|gpt-3\.5|gpt-35)/

/**
 * The encoding of a model, when it is an OpenAI chat model (a `provider/` prefix, as a gateway
 * names it, is ignored): `undefined` for any other model.
 */
export const encodingOf = (model: string): Encoding | undefined => {
  const slash = model.lastIndexOf("/")
  const bare = (slash < 0 ? model : model.slice(slash + 1)).toLowerCase()
  if (o200k.test(bare)) return "o200k_base"
  if (cl100k.test(bare)) return "cl100k_base"
  return undefined
}

/** Counts the tokens of a string. */
export type CountText = (text: string) => number

/** Special tokens in a prompt are text to the API: counted as text, never a refusal. */
const asText = { disallowedSpecial: new Set<string>() }

const loaded = new Map<Encoding, CountText>()
const loading = new Map<Encoding, Promise<CountText>>()

const importEncoding = (encoding: Encoding): Promise<CountText> =>
  (encoding === "o200k_base"
    ? import("gpt-tokenizer/encoding/o200k_base")
    : import("gpt-tokenizer/encoding/cl100k_base")).then((module) => {
      const count: CountText = (text) => text.length === 0 ? 0 : module.countTokens(text, asText)
      loaded.set(encoding, count)
      return count
    })

/** The tokenizer of an encoding, loaded once, on first use. */
export const tokenizer = (encoding: Encoding): Effect.Effect<CountText> => {
  const ready = loaded.get(encoding)
  if (ready !== undefined) return Effect.succeed(ready)
  return Effect.promise(() => {
    let promise = loading.get(encoding)
    if (promise === undefined) {
      promise = importEncoding(encoding)
      loading.set(encoding, promise)
    }
    return promise
  })
}

/** Whether the tokenizer of an encoding is loaded (a test and benchmark aid). */
export const isLoaded = (encoding: Encoding): boolean => loaded.has(encoding)

/** Per message: `<|start|>{role}\n{content}<|end|>\n` is 3 tokens plus the role. */
export const tokensPerMessage = 3
/** Every reply is primed with `<|start|>assistant<|message|>`. */
export const replyPriming = 3
/** An assistant tool call: its name and arguments plus this much framing (OpenAI documents none). */
export const tokensPerToolCall = 8
/** An image in an OpenAI request: the most a `detail: "high"` image costs on gpt-4o (85 + 8 tiles x 170). */
export const openAiImageTokens = 1_445

const withoutFinalDot = (text: string): string => text.endsWith(".") ? text.slice(0, -1) : text

/** Tool definitions as OpenAI's cookbook counts them (`num_tokens_for_tools`). */
const toolTokens = (count: CountText, encoding: Encoding, tools: LLM.CompletionRequest["tools"]): number => {
  if (tools === undefined || tools.length === 0) return 0
  const funcInit = encoding === "o200k_base" ? 7 : 10
  let tokens = 12 // func_end, once
  for (const tool of tools) {
    tokens += funcInit + count(`${tool.name}:${withoutFinalDot(tool.description ?? "")}`)
    const properties = (tool.parameters as { readonly properties?: Record<string, unknown> } | undefined)?.properties
    if (properties === undefined || typeof properties !== "object") continue
    const keys = Object.keys(properties)
    if (keys.length === 0) continue
    tokens += 3 // prop_init
    for (const key of keys) {
      tokens += 3 // prop_key
      const property = (properties[key] ?? {}) as {
        readonly type?: unknown
        readonly description?: unknown
        readonly enum?: ReadonlyArray<unknown>
        readonly properties?: unknown
        readonly items?: unknown
      }
      if (Array.isArray(property.enum)) {
        tokens -= 3 // enum_init
        for (const item of property.enum) tokens += 3 + count(String(item))
      }
      const type = typeof property.type === "string" ? property.type : json(property.type ?? "")
      const description = typeof property.description === "string" ? withoutFinalDot(property.description) : ""
      tokens += count(`${key}:${type}:${description}`)
      // Nested schemas: the cookbook has no rule; their JSON errs high.
      if (property.properties !== undefined) tokens += count(json(property.properties))
      if (property.items !== undefined) tokens += count(json(property.items))
    }
  }
  return tokens
}

/**
 * The prompt tokens of a request to an OpenAI model, as the OpenAI provider sends it (user text
 * parts joined, tool results as `tool` messages, reasoning not sent back). `exact` is false when
 * the request has images (their tokens depend on their size, which is not known here).
 */
export const countOpenAi = (
  count: CountText,
  encoding: Encoding,
  request: LLM.CompletionRequest
): { readonly tokens: number; readonly exact: boolean } => {
  let tokens = replyPriming
  let exact = true
  const message = (role: string, content: string) => {
    tokens += tokensPerMessage + count(role) + count(content)
  }
  if (request.system !== undefined) message("system", request.system)
  for (const m of request.messages) {
    let text = ""
    let images = 0
    let calls = 0
    for (const part of m.content) {
      switch (part._tag) {
        case "Text":
          text += part.text
          break
        case "Image":
          images++
          break
        case "ToolCall":
          calls++
          tokens += tokensPerToolCall + count(part.name) +
            count(typeof part.input === "string" ? part.input : json(part.input ?? {}))
          break
        case "ToolResult":
          message("tool", part.content)
          break
        default:
          break
      }
    }
    if (images > 0) {
      exact = false
      tokens += images * openAiImageTokens
    }
    if (m.role === "assistant" ? text !== "" || calls > 0 : text !== "" || images > 0) message(m.role, text)
  }
  tokens += toolTokens(count, encoding, request.tools)
  return { tokens, exact }
}

/** The local count of a request: the tokenizer where the model's encoding is known, else the estimate. */
export const countLocal = (request: LLM.ResolvedRequest): Effect.Effect<Tokens.TokenCount> => {
  const encoding = encodingOf(request.model)
  if (encoding === undefined) return Effect.succeed({ inputTokens: estimate(request), method: "estimate" })
  return Effect.map(tokenizer(encoding), (count) => {
    const { exact, tokens } = countOpenAi(count, encoding, request)
    return { inputTokens: tokens, method: exact ? "tokenizer" : "estimate" }
  })
}
