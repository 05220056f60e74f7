/**
 * Messages of a conversation and their content parts.
 *
 * @example
 * ```ts
 * import { Message } from "@orchestify/providers"
 *
 * const messages = [
 *   Message.user("What is in this picture?"),
 *   Message.user([Message.text("Describe it"), Message.imageUrl("https://example.com/cat.png")])
 * ]
 * ```
 *
 * @since 0.1.0
 */

/**
 * Text.
 *
 * @since 0.1.0
 * @category Models
 */
export interface TextPart {
  readonly _tag: "Text"
  readonly text: string
}

/**
 * An image, inline (base64) or by URL.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ImagePart {
  readonly _tag: "Image"
  readonly source:
    | { readonly _tag: "Base64"; readonly mediaType: string; readonly data: string }
    | { readonly _tag: "Url"; readonly url: string }
}

/**
 * A tool call made by the assistant.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolCallPart {
  readonly _tag: "ToolCall"
  readonly id: string
  readonly name: string
  readonly input: unknown
}

/**
 * The result of a tool call, sent back by the user side.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolResultPart {
  readonly _tag: "ToolResult"
  readonly toolCallId: string
  readonly content: string
  readonly isError: boolean
}

/**
 * The model's visible reasoning. Claude signs it: send it back unchanged (with its `signature`)
 * in the next request of a tool-use turn.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ThinkingPart {
  readonly _tag: "Thinking"
  readonly thinking: string
  readonly signature?: string
}

/**
 * Reasoning the provider encrypted (Claude `redacted_thinking`): send `data` back unchanged.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RedactedThinkingPart {
  readonly _tag: "RedactedThinking"
  readonly data: string
}

/**
 * Any content part.
 *
 * @since 0.1.0
 * @category Models
 */
export type Part = TextPart | ImagePart | ToolCallPart | ToolResultPart | ThinkingPart | RedactedThinkingPart

/**
 * Who said it.
 *
 * @since 0.1.0
 * @category Models
 */
export type Role = "user" | "assistant"

/**
 * One message of a conversation. The system prompt is not a message: it is the request's
 * `system` field.
 *
 * @since 0.1.0
 * @category Models
 */
export interface LLMMessage {
  readonly role: Role
  readonly content: ReadonlyArray<Part>
}

/**
 * A text part.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const text = (text: string): TextPart => ({ _tag: "Text", text })

/**
 * An inline image part (base64 data without the `data:` prefix).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const imageBase64 = (mediaType: string, data: string): ImagePart => ({
  _tag: "Image",
  source: { _tag: "Base64", mediaType, data }
})

/**
 * An image part by URL.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const imageUrl = (url: string): ImagePart => ({ _tag: "Image", source: { _tag: "Url", url } })

/**
 * A tool call part.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const toolCall = (id: string, name: string, input: unknown): ToolCallPart => ({
  _tag: "ToolCall",
  id,
  name,
  input
})

/**
 * A tool result part; `content` that is not a string is sent as JSON.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const toolResult = (
  toolCallId: string,
  content: unknown,
  options?: { readonly isError?: boolean }
): ToolResultPart => ({
  _tag: "ToolResult",
  toolCallId,
  content: typeof content === "string" ? content : JSON.stringify(content),
  isError: options?.isError ?? false
})

const toParts = (content: string | Part | ReadonlyArray<Part>): ReadonlyArray<Part> =>
  typeof content === "string" ? [text(content)] : Array.isArray(content) ? content : [content as Part]

/**
 * A user message.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const user = (content: string | Part | ReadonlyArray<Part>): LLMMessage => ({
  role: "user",
  content: toParts(content)
})

/**
 * An assistant message (for example a previous reply: `Message.assistant(response.parts)`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const assistant = (content: string | Part | ReadonlyArray<Part>): LLMMessage => ({
  role: "assistant",
  content: toParts(content)
})

/**
 * A user message carrying tool results.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const toolResults = (results: ReadonlyArray<ToolResultPart>): LLMMessage => ({
  role: "user",
  content: results
})
