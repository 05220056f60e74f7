/**
 * What the benchmark server sends and what every contender must receive, shared by the server and
 * the clients so that a reply can be checked exactly.
 *
 * A request asks for its reply in its prompt: `bench seq=<seq> chunks=<chunks>`. The reply's text
 * is `chunks` words, each unique to the request (`s<seq>c<i> `), so a dropped, duplicated,
 * reordered or crossed chunk changes the text; its usage is derived from `seq` and `chunks`, so a
 * usage total that counts a call twice or misses one is off.
 */

/** The prompt that asks the server for a reply of `chunks` pieces. */
export const prompt = (seq: number, chunks: number): string => `bench seq=${seq} chunks=${chunks}`

const promptPattern = /bench seq=(\d+) chunks=(\d+)/

/** Reads `seq` and `chunks` back from a raw request body. */
export const parsePrompt = (body: string): { readonly seq: number; readonly chunks: number } | undefined => {
  const match = promptPattern.exec(body)
  return match === null ? undefined : { seq: Number(match[1]), chunks: Number(match[2]) }
}

/** The `i`-th text delta of request `seq`. */
export const piece = (seq: number, i: number): string => `s${seq}c${i} `

/** The whole text of the reply to request `seq`. */
export const text = (seq: number, chunks: number): string => {
  let out = ""
  for (let i = 0; i < chunks; i++) out += piece(seq, i)
  return out
}

/** The usage the server reports for request `seq` (Anthropic's `input_tokens`, OpenAI's `prompt_tokens`). */
export const usage = (
  seq: number,
  chunks: number
): { readonly inputTokens: number; readonly outputTokens: number } => ({
  inputTokens: 20 + (seq % 7),
  outputTokens: chunks + 1
})

/** Models the contenders ask for (priced in our table, accepted by every library). */
export const models = { openai: "gpt-4o", anthropic: "claude-sonnet-4-6" } as const

/** Max tokens every contender sends. */
export const maxTokens = 1024
