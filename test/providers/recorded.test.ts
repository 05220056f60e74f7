/**
 * Replays every recorded provider reply in `test/fixtures/recorded/` (real replies from Anthropic,
 * OpenAI, Azure, DeepSeek, Groq and xAI, written by no one on this project) through
 * `FakeProviderServer` and the real providers, and checks what a user would observe.
 *
 * The expectation of each fixture is computed by a small oracle written here, independently of
 * `src/`: it reads the raw wire payloads and applies the rules of DESIGN.md (finish reasons, the
 * normalised usage shape). On top of the oracle, a few facts per fixture are asserted by hand,
 * read off the fixture itself.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Url from "node:url"
import type * as LLM from "../../src/LLM.js"
import * as Message from "../../src/Message.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as OpenAI from "../../src/providers/OpenAI.js"
import * as Response from "../../src/Response.js"
import * as FakeProviderServer from "../../src/testing/FakeProviderServer.js"
import type * as Usage from "../../src/Usage.js"

const { Reply } = FakeProviderServer

// -----------------------------------------------------------------------------
// Fixtures
// -----------------------------------------------------------------------------

const root = Url.fileURLToPath(new URL("../fixtures/recorded/", import.meta.url))

/** The wire dialect of each folder. A new folder fails the coverage guard until it is added here. */
const dialects: Readonly<Record<string, Dialect>> = {
  "anthropic": "anthropic",
  "openai-chat": "chat",
  "openai-compatible": "chat"
}

type Dialect = "anthropic" | "chat"

interface Fixture {
  /** `folder/file`, e.g. `anthropic/anthropic-text.chunks.txt`. */
  readonly name: string
  readonly dialect: Dialect
  readonly kind: "stream" | "json"
  readonly path: string
}

/** Every file in every folder of `recorded/` (the README aside), whatever its name. */
const allFiles: ReadonlyArray<string> = Fs.readdirSync(root, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .flatMap((dir) =>
    Fs.readdirSync(Path.join(root, dir.name), { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => `${dir.name}/${entry.name}`)
  )
  .sort()

const fixtureOf = (name: string): Fixture | undefined => {
  const [folder = ""] = name.split("/")
  const dialect = dialects[folder]
  if (dialect === undefined) return undefined
  const kind = name.endsWith(".chunks.txt") ? "stream" : name.endsWith(".json") ? "json" : undefined
  if (kind === undefined) return undefined
  return { name, dialect, kind, path: Path.join(root, name) }
}

const fixtures: ReadonlyArray<Fixture> = allFiles.flatMap((name) => {
  const fixture = fixtureOf(name)
  return fixture === undefined ? [] : [fixture]
})

const readLines = (fixture: Fixture): Array<string> =>
  Fs.readFileSync(fixture.path, "utf8").split(/\r?\n/).filter((line) => line.trim() !== "")

const readJson = (fixture: Fixture): any => JSON.parse(Fs.readFileSync(fixture.path, "utf8"))

// -----------------------------------------------------------------------------
// The oracle: what each reply says, read straight off the wire
// -----------------------------------------------------------------------------

type ExpectedPart =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Thinking"; readonly thinking: string; readonly signature?: string }
  | { readonly _tag: "RedactedThinking"; readonly data: string }
  | { readonly _tag: "ToolCall"; readonly id: string; readonly name: string; readonly input: unknown }

interface Expected {
  readonly content: string
  readonly thinking: string | undefined
  readonly toolCalls: ReadonlyArray<{ readonly id: string; readonly name: string; readonly input: unknown }>
  readonly finishReason: Response.FinishReason
  readonly rawFinishReason: string | undefined
  readonly usage: Usage.Tokens
  readonly model: string
  /** The parts in order: adjacent text merged, one part per Claude thinking block (with its signature). */
  readonly parts: ReadonlyArray<ExpectedPart>
}

/** What a user observes of a response, in the shape of `Expected`. */
const observe = (response: Response.LLMResponse): Expected => ({
  content: response.content,
  thinking: response.thinking,
  toolCalls: response.toolCalls.map(({ id, input, name }) => ({ id, name, input })),
  finishReason: response.finishReason,
  rawFinishReason: response.rawFinishReason,
  usage: response.usage,
  model: response.model,
  parts: response.parts as ReadonlyArray<ExpectedPart>
})

/** Tool arguments as JSON text; no text at all means no arguments. */
const parseArgs = (json: string): unknown => json.trim() === "" ? {} : JSON.parse(json)

/** DESIGN.md: the raw stop reason of the Messages API, mapped. */
const anthropicFinish = (raw: string | undefined): Response.FinishReason => {
  switch (raw) {
    case "end_turn":
    case "stop_sequence":
      return "stop"
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "tool_use":
      return "tool_calls"
    case "refusal":
      return "content_filter"
    default:
      return "other"
  }
}

/** DESIGN.md: the raw `finish_reason` of Chat Completions, mapped. */
const chatFinish = (raw: string | undefined): Response.FinishReason => {
  switch (raw) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "tool_calls":
    case "function_call":
      return "tool_calls"
    case "content_filter":
      return "content_filter"
    default:
      return "other"
  }
}

const num = (value: unknown): number => typeof value === "number" ? value : 0

/**
 * Anthropic usage, normalised: `input_tokens` excludes cache reads and writes, so they are added.
 * With server-side compaction the top-level usage counts only the last sampling iteration; the
 * compaction iteration (billed, and rate-limited, like any other) is only in `usage.iterations`, so
 * it is added too.
 */
const anthropicTokens = (usage: any): Usage.Tokens => {
  const compaction = Array.isArray(usage?.iterations)
    ? usage.iterations.filter((iteration: any) => iteration?.type === "compaction")
    : []
  const sum = (key: string) =>
    num(usage?.[key]) + compaction.reduce((total: number, iteration: any) => total + num(iteration[key]), 0)
  const cacheRead = sum("cache_read_input_tokens")
  const cacheWrite = sum("cache_creation_input_tokens")
  return {
    inputTokens: sum("input_tokens") + cacheRead + cacheWrite,
    outputTokens: sum("output_tokens"),
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    reasoningTokens: 0
  }
}

/**
 * Chat Completions usage, normalised: `prompt_tokens` already includes cached tokens. Output counts
 * reasoning: most servers include it in `completion_tokens` (`total = prompt + completion`), xAI does
 * not (`total = prompt + completion + reasoning`), and then it is added.
 */
const chatTokens = (usage: any): Usage.Tokens => {
  const prompt = num(usage?.prompt_tokens)
  const completion = num(usage?.completion_tokens)
  const reasoning = num(usage?.completion_tokens_details?.reasoning_tokens)
  const reasoningApart = reasoning > 0 && usage?.total_tokens === prompt + completion + reasoning
  return {
    inputTokens: prompt,
    outputTokens: reasoningApart ? completion + reasoning : completion,
    cacheReadTokens: num(usage?.prompt_tokens_details?.cached_tokens ?? usage?.prompt_cache_hit_tokens),
    cacheWriteTokens: 0,
    reasoningTokens: reasoning
  }
}

/** Appends text or visible reasoning to the parts, merging with the part before when it can. */
const appendPart = (parts: Array<ExpectedPart>, tag: "Text" | "Thinking", text: string): void => {
  if (text === "") return
  const last = parts[parts.length - 1]
  if (tag === "Text") {
    if (last?._tag === "Text") parts[parts.length - 1] = { _tag: "Text", text: last.text + text }
    else parts.push({ _tag: "Text", text })
  } else {
    if (last?._tag === "Thinking" && last.signature === undefined) {
      parts[parts.length - 1] = { _tag: "Thinking", thinking: last.thinking + text }
    } else parts.push({ _tag: "Thinking", thinking: text })
  }
}

const finishParts = (
  parts: ReadonlyArray<ExpectedPart>
): Pick<Expected, "content" | "thinking" | "toolCalls" | "parts"> => {
  const content = parts.flatMap((part) => part._tag === "Text" ? [part.text] : []).join("")
  const thinkingParts = parts.flatMap((part) => part._tag === "Thinking" ? [part.thinking] : [])
  const toolCalls = parts.flatMap((part) =>
    part._tag === "ToolCall" ? [{ id: part.id, name: part.name, input: part.input }] : []
  )
  return {
    content,
    thinking: thinkingParts.length > 0 ? thinkingParts.join("") : undefined,
    toolCalls,
    parts
  }
}

/**
 * A Messages API stream: text of `text_delta`s, thinking of `thinking_delta`s (a block keeps its
 * `signature_delta`), `tool_use` blocks with their `partial_json` joined and parsed at the block's
 * end; usage of `message_start` overwritten field by field by `message_delta`. Server tool blocks
 * (`server_tool_use`, `web_search_tool_result`), `compaction` and `fallback` blocks are not the
 * client's to act on. The model that answered is the `fallback` block's target, when there is one.
 */
const anthropicStreamOracle = (lines: ReadonlyArray<string>): Expected => {
  const parts: Array<ExpectedPart> = []
  const blocks = new Map<number, { type: string; json: string; id: string; name: string; thinking: string }>()
  const usage: Record<string, unknown> = {}
  let model = ""
  let stop: string | undefined = undefined
  for (const line of lines) {
    const event = JSON.parse(line)
    switch (event.type) {
      case "message_start":
        model = event.message.model
        Object.assign(usage, event.message.usage)
        break
      case "content_block_start": {
        const block = event.content_block
        blocks.set(event.index, { type: block.type, json: "", id: block.id, name: block.name, thinking: "" })
        if (block.type === "text") appendPart(parts, "Text", block.text ?? "")
        if (block.type === "thinking") blocks.get(event.index)!.thinking = block.thinking ?? ""
        if (block.type === "redacted_thinking") parts.push({ _tag: "RedactedThinking", data: block.data })
        if (block.type === "fallback") model = block.to.model
        break
      }
      case "content_block_delta": {
        const block = blocks.get(event.index)!
        const delta = event.delta
        if (delta.type === "text_delta") appendPart(parts, "Text", delta.text)
        if (delta.type === "thinking_delta") block.thinking += delta.thinking
        if (delta.type === "signature_delta") {
          parts.push({ _tag: "Thinking", thinking: block.thinking, signature: delta.signature })
          block.type = "signed_thinking"
        }
        if (delta.type === "input_json_delta" && block.type === "tool_use") block.json += delta.partial_json
        break
      }
      case "content_block_stop": {
        const block = blocks.get(event.index)!
        if (block.type === "tool_use") {
          parts.push({ _tag: "ToolCall", id: block.id, name: block.name, input: parseArgs(block.json) })
        }
        if (block.type === "thinking") appendPart(parts, "Thinking", block.thinking)
        break
      }
      case "message_delta":
        if (typeof event.delta?.stop_reason === "string") stop = event.delta.stop_reason
        for (const [key, value] of Object.entries(event.usage ?? {})) {
          if (value !== null && value !== undefined) usage[key] = value
        }
        break
      default:
        break
    }
  }
  return {
    ...finishParts(parts),
    finishReason: anthropicFinish(stop),
    rawFinishReason: stop,
    usage: anthropicTokens(usage),
    model
  }
}

/** A complete Messages API reply. */
const anthropicJsonOracle = (message: any): Expected => {
  const parts: Array<ExpectedPart> = []
  for (const block of message.content) {
    if (block.type === "text") appendPart(parts, "Text", block.text)
    if (block.type === "thinking") {
      parts.push({ _tag: "Thinking", thinking: block.thinking, signature: block.signature })
    }
    if (block.type === "redacted_thinking") parts.push({ _tag: "RedactedThinking", data: block.data })
    if (block.type === "tool_use") parts.push({ _tag: "ToolCall", id: block.id, name: block.name, input: block.input })
  }
  return {
    ...finishParts(parts),
    finishReason: anthropicFinish(message.stop_reason ?? undefined),
    rawFinishReason: message.stop_reason ?? undefined,
    usage: anthropicTokens(message.usage),
    model: message.model
  }
}

const reasoningOf = (message: any): unknown =>
  typeof message?.reasoning_content === "string" ? message.reasoning_content : message?.reasoning

/**
 * A Chat Completions stream: `choices[0].delta.content` joined, reasoning (`reasoning_content` or
 * `reasoning`) joined, tool calls assembled by `index`, usage of the last chunk whose `usage` is not
 * null, the model of the chunks (Azure's first chunk has an empty one).
 */
const chatStreamOracle = (lines: ReadonlyArray<string>): Expected => {
  const parts: Array<ExpectedPart> = []
  const tools = new Map<number, { id: string; name: string; args: string; at: number }>()
  let usage: unknown = undefined
  let model = ""
  let stop: string | undefined = undefined
  for (const line of lines) {
    const chunk = JSON.parse(line)
    if (typeof chunk.model === "string" && chunk.model !== "") model = chunk.model
    if (chunk.usage !== null && chunk.usage !== undefined) usage = chunk.usage
    const choice = Array.isArray(chunk.choices) ? chunk.choices.find((c: any) => (c.index ?? 0) === 0) : undefined
    if (choice === undefined) continue
    const delta = choice.delta ?? {}
    const reasoning = reasoningOf(delta)
    if (typeof reasoning === "string") appendPart(parts, "Thinking", reasoning)
    if (typeof delta.content === "string") appendPart(parts, "Text", delta.content)
    for (const call of delta.tool_calls ?? []) {
      const tool = tools.get(call.index) ?? { id: call.id, name: call.function?.name ?? "", args: "", at: parts.length }
      if (!tools.has(call.index)) {
        tools.set(call.index, tool)
        parts.push({ _tag: "ToolCall", id: tool.id, name: tool.name, input: undefined })
      }
      tool.args += call.function?.arguments ?? ""
    }
    if (typeof choice.finish_reason === "string") stop = choice.finish_reason
  }
  for (const tool of tools.values()) {
    parts[tool.at] = { _tag: "ToolCall", id: tool.id, name: tool.name, input: parseArgs(tool.args) }
  }
  return {
    ...finishParts(parts),
    finishReason: chatFinish(stop),
    rawFinishReason: stop,
    usage: chatTokens(usage),
    model
  }
}

/** A complete Chat Completions reply. */
const chatJsonOracle = (completion: any): Expected => {
  const parts: Array<ExpectedPart> = []
  const choice = completion.choices[0]
  const message = choice.message
  const reasoning = reasoningOf(message)
  if (typeof reasoning === "string") appendPart(parts, "Thinking", reasoning)
  if (typeof message.content === "string") appendPart(parts, "Text", message.content)
  for (const call of message.tool_calls ?? []) {
    parts.push({ _tag: "ToolCall", id: call.id, name: call.function.name, input: parseArgs(call.function.arguments) })
  }
  return {
    ...finishParts(parts),
    finishReason: chatFinish(choice.finish_reason ?? undefined),
    rawFinishReason: choice.finish_reason ?? undefined,
    usage: chatTokens(completion.usage),
    model: completion.model
  }
}

const oracle = (fixture: Fixture): Expected =>
  fixture.dialect === "anthropic"
    ? fixture.kind === "stream" ? anthropicStreamOracle(readLines(fixture)) : anthropicJsonOracle(readJson(fixture))
    : fixture.kind === "stream"
    ? chatStreamOracle(readLines(fixture))
    : chatJsonOracle(readJson(fixture))

// -----------------------------------------------------------------------------
// Facts read off each fixture by hand
// -----------------------------------------------------------------------------

const usageOf = (
  inputTokens: number,
  outputTokens: number,
  more: Partial<Usage.Tokens> = {}
): Usage.Tokens => ({
  inputTokens,
  outputTokens,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  reasoningTokens: 0,
  ...more
})

const onlyPart = (response: Response.LLMResponse, tag: Message.Part["_tag"]) =>
  response.parts.filter((part) => part._tag === tag)

const facts: Readonly<Record<string, (response: Response.LLMResponse) => void>> = {
  "anthropic/anthropic-clear-thinking.1.chunks.txt": (r) => {
    expect(r.thinking).toBe("The previous result was 925. Now I need to divide that by 5.\n\n925 ÷ 5 = 185")
    expect(r.content).toBe("925 ÷ 5 = 185")
    // the signature stays with its thinking, ready to be sent back
    const [thinking] = onlyPart(r, "Thinking")
    expect(thinking).toMatchObject({ _tag: "Thinking", thinking: r.thinking })
    expect((thinking as Message.ThinkingPart).signature).toMatch(/^EvQBCkYICxgCKkAxhD4NUKFzudtZ6NzbZdEiBACIScT/)
    expect(r.parts.map((part) => part._tag)).toEqual(["Thinking", "Text"])
  },
  "anthropic/anthropic-clear-thinking.1.json": (r) => {
    expect(r.parts[0]).toMatchObject({ _tag: "Thinking", thinking: "925 divided by 5 = 185" })
    expect((r.parts[0] as Message.ThinkingPart).signature).toMatch(/^Er4BCkYICxgCKkCoxqLHLrx4mFL9Ox7/)
    expect(r.usage).toEqual(usageOf(69, 33))
  },
  "anthropic/anthropic-compaction.1.chunks.txt": (r) => {
    expect(r.content).toMatch(/^Based on the conversation history, you asked me to summarize the key algorithms/)
    // the compaction summary is not part of the answer
    expect(r.content).not.toContain("## Summary of Conversation")
    expect(r.model).toBe("claude-opus-4-6")
    // 612 + 2819 for the answer, and the compaction step (60385 in, 522 out) billed with it
    expect(r.usage).toEqual(usageOf(612 + 60385, 2819 + 522))
  },
  "anthropic/anthropic-compaction.1.json": (r) => {
    expect(r.content).toMatch(/^Based on our conversation history, you had asked me to summarize/)
    expect(r.content).not.toContain("## Summary of Conversation")
    expect(r.usage).toEqual(usageOf(682 + 60385, 1320 + 592))
  },
  "anthropic/anthropic-fallback.chunks.txt": (r) => {
    expect(r.content).toBe("The printing press was invented by Johannes Gutenberg around 1440.")
    // message_start names the requested model; the fallback block names the one that answered
    expect(r.model).toBe("claude-opus-4-8")
    expect(r.usage).toEqual(usageOf(412, 264))
  },
  "anthropic/anthropic-fallback.json": (r) => {
    expect(r.content).toBe("The printing press was invented by Johannes Gutenberg around 1440.")
    expect(r.model).toBe("claude-opus-4-8")
  },
  "anthropic/anthropic-json-tool.1.chunks.txt": (r) => {
    expect(r.content).toBe("")
    expect(r.toolCalls).toEqual([{
      id: "toolu_01KFbKqPYSuAKujiL6mTfzYA",
      name: "json",
      input: { elements: [{ location: "San Francisco", temperature: 58, condition: "sunny" }] }
    }])
    expect(r.finishReason).toBe("tool_calls")
  },
  "anthropic/anthropic-json-tool.1.json": (r) => {
    const input = r.toolCalls[0]?.input as { elements: ReadonlyArray<{ location: string; temperature: number }> }
    expect(input.elements.map((e) => [e.location, e.temperature])).toEqual([
      ["San Francisco", -5],
      ["London", 0],
      ["Paris", 23],
      ["Berlin", -9]
    ])
    expect(r.usage).toEqual(usageOf(1151, 87))
  },
  "anthropic/anthropic-json-tool.2.chunks.txt": (r) => {
    expect(r.content).toBe("I'll invoke the JSON response tool.")
    expect(r.parts.map((part) => part._tag)).toEqual(["Text", "ToolCall"])
    expect(r.toolCalls[0]?.input).toEqual({
      elements: [{ location: "San Francisco", temperature: 58, condition: "sunny" }]
    })
  },
  "anthropic/anthropic-message-delta-input-tokens.chunks.txt": (r) => {
    expect(r.content).toBe("pong")
    // message_start said 43; message_delta revised it to 61: overwritten, never added (not 104)
    expect(r.usage).toEqual(usageOf(61, 2))
    expect(r.model).toBe("claude-opus-4-5-20251101")
  },
  "anthropic/anthropic-refusal.chunks.txt": (r) => {
    expect(r.finishReason).toBe("content_filter")
    expect(r.rawFinishReason).toBe("refusal")
    expect(r.content).toBe("")
    expect(r.parts).toEqual([])
    expect(r.usage).toEqual(usageOf(18, 5))
  },
  "anthropic/anthropic-refusal.json": (r) => {
    expect(r.finishReason).toBe("content_filter")
    expect(r.rawFinishReason).toBe("refusal")
    expect(r.parts).toEqual([])
  },
  "anthropic/anthropic-text.chunks.txt": (r) => {
    expect(r.content).toBe(
      "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?"
    )
    expect(r.usage).toEqual(usageOf(12, 30))
    expect(r.finishReason).toBe("stop")
  },
  "anthropic/anthropic-text.json": (r) => {
    expect(r.content).toBe(
      "Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help you with?"
    )
    expect(r.usage).toEqual(usageOf(12, 29))
  },
  "anthropic/anthropic-tool-no-args.chunks.txt": (r) => {
    expect(r.content).toBe("I'll update the issue list for you.")
    // one empty input_json_delta: no arguments is {}
    expect(r.toolCalls).toEqual([{ id: "toolu_01QE1WLsSVp5hy5Q3GmGTmjP", name: "updateIssueList", input: {} }])
  },
  "anthropic/anthropic-tool-no-args.json": (r) => {
    expect(r.toolCalls).toEqual([{ id: "toolu_01LRmxn9vGM1d2DZSDBowdZ1", name: "updateIssueList", input: {} }])
    // Claude 3 Opus wrote <thinking> tags into its text: text, not extended thinking
    expect(r.content).toMatch(/^<thinking>\nThe updateIssueList tool/)
    expect(r.thinking).toBeUndefined()
  },
  "anthropic/anthropic-web-search-tool.1.chunks.txt": (r) => {
    // server_tool_use is run by Anthropic: not a tool call for the client to answer
    expect(r.toolCalls).toEqual([])
    expect(r.finishReason).toBe("stop")
    expect(r.content).toContain("Apple today announced the grand reopening of Apple Ginza on Friday, September 26")
    expect(r.usage).toEqual(usageOf(15665, 795))
  },
  "anthropic/anthropic-web-search-tool.1.json": (r) => {
    expect(r.toolCalls).toEqual([])
    expect(r.content).toMatch(/^Let me search for more specific tech news from today \(September 26, 2024\)\./)
    expect(r.usage).toEqual(usageOf(27118, 600))
  },
  "openai-chat/azure-model-router.1.chunks.txt": (r) => {
    expect(r.content).toBe("Capital of Denmark.")
    // the model of the answer, not the empty one of the prompt_filter_results chunk
    expect(r.model).toBe("gpt-5-nano-2025-08-07")
    expect(r.usage).toEqual(usageOf(15, 78, { reasoningTokens: 64 }))
  },
  "openai-chat/openai-text.chunks.txt": (r) => {
    expect(r.content).toMatch(/^\*\*Holiday Name:\*\* Harmony Day\n\n/)
    expect(r.content).toHaveLength(1724)
    expect(r.usage).toEqual(usageOf(16, 300))
    expect(r.thinking).toBeUndefined()
  },
  "openai-chat/openai-text.json": (r) => {
    expect(r.content).toMatch(/^\*\*Holiday Name:\*\* Galaxy Day/)
    expect(r.usage).toEqual(usageOf(16, 363))
  },
  "openai-compatible/deepseek-reasoning.chunks.txt": (r) => {
    expect(r.content).toBe("The word \"strawberry\" contains three \"r\"s.")
    expect(r.thinking).toMatch(/^We need to count the number of the letter "r" in the word "strawberry"/)
    expect(r.usage).toEqual(usageOf(18, 219, { reasoningTokens: 205 }))
  },
  "openai-compatible/deepseek-reasoning.json": (r) => {
    expect(r.thinking).toMatch(/^We are asked: "How many 'r's are in the word 'strawberry'\?"/)
    expect(r.parts.map((part) => part._tag)).toEqual(["Thinking", "Text"])
    expect(r.usage.reasoningTokens).toBe(315)
  },
  "openai-compatible/deepseek-text.chunks.txt": (r) => {
    expect(r.finishReason).toBe("length")
    expect(r.usage).toEqual(usageOf(13, 400))
  },
  "openai-compatible/deepseek-text.json": (r) => {
    expect(r.finishReason).toBe("length")
    expect(r.rawFinishReason).toBe("length")
    expect(r.usage).toEqual(usageOf(13, 300))
  },
  "openai-compatible/deepseek-tool-call.chunks.txt": (r) => {
    expect(r.toolCalls).toEqual([{
      id: "call_00_ioIn7yN9p1ZOMNpDLwd4MgAF",
      name: "weather",
      input: { location: "San Francisco" }
    }])
    // prompt_tokens includes the 320 cached ones
    expect(r.usage).toEqual(usageOf(339, 83, { cacheReadTokens: 320, reasoningTokens: 39 }))
  },
  "openai-compatible/deepseek-tool-call.json": (r) => {
    expect(r.toolCalls).toEqual([{
      id: "call_00_9V0vrf86Pc9aelHCJMZqnJBo",
      name: "weather",
      input: { location: "San Francisco" }
    }])
    expect(r.content).toBe("")
    expect(r.usage.cacheReadTokens).toBe(320)
  },
  "openai-compatible/groq-reasoning.chunks.txt": (r) => {
    // Groq's `reasoning` field is thinking
    expect(r.thinking).toMatch(/^Okay, let me try to figure out how many times the letter 'r' appears/)
    expect(r.content).toMatch(/^The word \*\*"strawberry"\*\* is spelled as/)
    expect(r.usage).toEqual(usageOf(17, 1107, { reasoningTokens: 963 }))
  },
  "openai-compatible/groq-reasoning.json": (r) => {
    expect(r.thinking).toMatch(/^Okay, so the user is asking how many times the letter "r" appears/)
    expect(r.usage).toEqual(usageOf(17, 649, { reasoningTokens: 570 }))
  },
  "openai-compatible/groq-text.chunks.txt": (r) => {
    expect(r.content).toMatch(/^Introducing "Luminaria"/)
    expect(r.usage).toEqual(usageOf(45, 662))
  },
  "openai-compatible/groq-text.json": (r) => {
    expect(r.content).toMatch(/^I'd like to introduce "Luminaria"/)
    expect(r.usage).toEqual(usageOf(45, 607))
  },
  "openai-compatible/groq-tool-call.chunks.txt": (r) => {
    expect(r.toolCalls).toEqual([{ id: "tk85n1k4m", name: "weather", input: {} }])
    expect(r.usage).toEqual(usageOf(210, 15))
  },
  "openai-compatible/groq-tool-call.json": (r) => {
    expect(r.toolCalls).toEqual([{ id: "ax9fskhev", name: "weather", input: {} }])
    expect(r.finishReason).toBe("tool_calls")
  },
  "openai-compatible/xai-text.chunks.txt": (r) => {
    expect(r.content).toBe("Grok")
    expect(r.thinking).toMatch(/^First, the user said: "Say a single word\."/)
    // xAI's completion_tokens (2) leaves out the 340 reasoning tokens: total_tokens 354 = 12 + 2 + 340
    expect(r.usage).toEqual(usageOf(12, 342, { cacheReadTokens: 11, reasoningTokens: 340 }))
  },
  "openai-compatible/xai-text.json": (r) => {
    expect(r.content).toBe("Grok")
    expect(r.usage).toEqual(usageOf(12, 322, { cacheReadTokens: 2, reasoningTokens: 320 }))
  },
  "openai-compatible/xai-tool-call.chunks.txt": (r) => {
    expect(r.toolCalls).toEqual([{ id: "call_79382389", name: "weather", input: { location: "San Francisco" } }])
    expect(r.usage).toEqual(usageOf(307, 26 + 227, { cacheReadTokens: 306, reasoningTokens: 227 }))
  },
  "openai-compatible/xai-tool-call.json": (r) => {
    expect(r.toolCalls).toEqual([{ id: "call_46427107", name: "weather", input: { location: "San Francisco" } }])
    expect(r.usage).toEqual(usageOf(307, 26 + 255, { cacheReadTokens: 244, reasoningTokens: 255 }))
  }
}

// -----------------------------------------------------------------------------
// Replaying
// -----------------------------------------------------------------------------

/** What DESIGN.md promises of every usage. */
const checkUsageShape = (usage: Usage.Tokens) => {
  for (const value of Object.values(usage)) expect(Number.isInteger(value) && value >= 0).toBe(true)
  expect(usage.cacheReadTokens + usage.cacheWriteTokens).toBeLessThanOrEqual(usage.inputTokens)
  expect(usage.reasoningTokens).toBeLessThanOrEqual(usage.outputTokens)
}

/** What every stream must look like, whatever the reply: one `Finish`, last; tool calls announced and streamed. */
const checkEvents = (events: ReadonlyArray<Response.StreamEvent>) => {
  expect(events.filter((event) => event._tag === "Finish")).toHaveLength(1)
  expect(events[events.length - 1]?._tag).toBe("Finish")
  for (const [at, event] of events.entries()) {
    if (event._tag !== "ToolCall") continue
    const before = events.slice(0, at)
    expect(before).toContainEqual({ _tag: "ToolCallStart", id: event.id, name: event.name })
    const streamed = before.flatMap((e) => e._tag === "ToolCallDelta" && e.id === event.id ? [e.argumentsDelta] : [])
    expect(parseArgs(streamed.join(""))).toEqual(event.input)
  }
}

const ask: LLM.CompletionRequest = { messages: [Message.user("Replay")] }

/** Claude is asked for a current model; the provider refuses a name that is not claude-*. */
const claudeModel = "claude-sonnet-4-6"

const makeLlm = (
  fixture: Fixture,
  server: FakeProviderServer.Service
): Effect.Effect<LLM.Service, never, Scope.Scope> =>
  fixture.dialect === "anthropic"
    ? Anthropic.make({ apiKey: Redacted.make("sk-ant-test"), baseUrl: server.anthropicBaseUrl })
    : OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl })

const replyOf = (fixture: Fixture): FakeProviderServer.Reply =>
  fixture.kind === "json"
    ? Reply.json(readJson(fixture))
    : Reply.recorded(readLines(fixture), fixture.dialect === "anthropic" ? "anthropic" : "openai")

const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) => Logger.withMinimumLogLevel(self, LogLevel.Error)

describe("recorded fixtures", () => {
  it("every file in test/fixtures/recorded/ is replayed and has facts asserted by hand", () => {
    expect(allFiles.length).toBeGreaterThan(0)
    const unreplayed = allFiles.filter((name) => fixtureOf(name) === undefined)
    expect(unreplayed, "files with no replay (unknown folder or extension)").toEqual([])
    const factless = fixtures.filter((fixture) => facts[fixture.name] === undefined).map((fixture) => fixture.name)
    expect(factless, "fixtures with no hand-asserted facts").toEqual([])
    const stale = Object.keys(facts).filter((name) => !allFiles.includes(name))
    expect(stale, "facts for fixtures that are gone").toEqual([])
  })
})

layer(FakeProviderServer.layer())("recorded replies", (it) => {
  const setup = (fixture: Fixture) =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.FakeProviderServer
      yield* server.reset
      const llm = yield* makeLlm(fixture, server)
      const expected = oracle(fixture)
      const request: LLM.CompletionRequest = {
        ...ask,
        model: fixture.dialect === "anthropic" ? claudeModel : expected.model
      }
      return { server, llm, expected, request }
    })

  it.scoped("a stream read in two network reads keeps every event through Stream.runCollect", () =>
    Effect.gen(function*() {
      // deepseek-tool-call: the reasoning in a first read, then the tool call, the finish and the
      // usage in a second one; a `Finish` that shares its read with other events must not cost them
      const fixture = fixtures.find((f) => f.name === "openai-compatible/deepseek-tool-call.chunks.txt")!
      const { expected, llm, request, server } = yield* setup(fixture)
      const lines = readLines(fixture)
      const cut = lines.findIndex((line) => line.includes("\"tool_calls\""))
      const data = (part: ReadonlyArray<string>) => part.map((line) => `data: ${line}\n\n`).join("")
      yield* server.enqueue(Reply.sse([
        FakeProviderServer.SseItem.raw(data(lines.slice(0, cut))),
        FakeProviderServer.SseItem.delay(30),
        FakeProviderServer.SseItem.raw(data([...lines.slice(cut), "[DONE]"]))
      ]))
      const events = Chunk.toArray(yield* Stream.runCollect(llm.stream(request)))
      expect(observe(yield* Response.collect(Stream.fromIterable(events)))).toEqual(expected)
    }).pipe(quiet))

  for (const fixture of fixtures) {
    if (fixture.kind === "stream") {
      it.scoped(`${fixture.name}: stream, Response.collect and Stream.runCollect`, () =>
        Effect.gen(function*() {
          const { expected, llm, request, server } = yield* setup(fixture)
          yield* server.enqueue(replyOf(fixture), replyOf(fixture))
          // never killed by what it does not know (ping, server tool blocks, compaction, empty choices, ...)
          const response = yield* Response.collect(llm.stream(request))
          expect.soft(observe(response), "Response.collect(llm.stream(...))").toEqual(expected)
          // the events a user collects tell the same story, whole
          const events = Chunk.toArray(yield* Stream.runCollect(llm.stream(request)))
          const collected = yield* Response.collect(Stream.fromIterable(events))
          expect.soft(observe(collected), "Stream.runCollect(llm.stream(...))").toEqual(expected)
          // the provider's tally saw both calls, once each, with the reply's tokens
          const tally = yield* llm.usage
          expect.soft({ calls: tally.calls, failures: tally.failures, in: tally.inputTokens, out: tally.outputTokens })
            .toEqual({
              calls: 2,
              failures: 0,
              in: 2 * expected.usage.inputTokens,
              out: 2 * expected.usage.outputTokens
            })
          if (fixture.dialect === "anthropic") {
            // a large max_tokens makes `complete` stream internally: the same reply, the same response
            yield* server.enqueue(replyOf(fixture))
            const completed = yield* llm.complete({ ...request, maxTokens: Anthropic.nonStreamingMaxTokens + 1 })
            expect.soft(observe(completed), "complete, streamed internally").toEqual(expected)
          }
          checkEvents(events)
          checkUsageShape(response.usage)
          facts[fixture.name]?.(response)
        }).pipe(quiet))
    } else {
      it.scoped(`${fixture.name}: complete`, () =>
        Effect.gen(function*() {
          const { expected, llm, request, server } = yield* setup(fixture)
          yield* server.enqueue(replyOf(fixture))
          const response = yield* llm.complete(request)
          expect.soft(observe(response), "complete").toEqual(expected)
          const [sent] = yield* server.requests
          expect((sent?.body as { stream?: unknown }).stream).not.toBe(true)
          const tally = yield* llm.usage
          expect.soft({ calls: tally.calls, in: tally.inputTokens, out: tally.outputTokens }).toEqual({
            calls: 1,
            in: expected.usage.inputTokens,
            out: expected.usage.outputTokens
          })
          checkUsageShape(response.usage)
          facts[fixture.name]?.(response)
        }).pipe(quiet))
    }
  }
})
