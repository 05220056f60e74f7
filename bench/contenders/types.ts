/**
 * What every contender offers the benchmark driver: one non-streaming call and one streamed call,
 * each resolving to what the consumer received, so the driver can check it against `wire.ts`.
 */

/** What a consumer received from one call. */
export interface Reply {
  readonly text: string
  readonly inputTokens: number
  readonly outputTokens: number
  /** How many text deltas reached the consumer (streams). */
  readonly deltas: number
  /** `performance.now()` when the consumer received its first and its last text (streams). */
  readonly firstAt?: number | undefined
  readonly lastAt?: number | undefined
}

/** A library's own usage tally, when it keeps one. */
export interface Totals {
  readonly calls: number
  readonly failures: number
  readonly inputTokens: number
  readonly outputTokens: number
}

/** One contender, built against the bench server at `origin` (`http://127.0.0.1:port`). */
export interface Client {
  readonly complete: (seq: number, chunks: number) => Promise<Reply>
  readonly stream: (seq: number, chunks: number) => Promise<Reply>
  readonly usage?: (() => Promise<Totals>) | undefined
  readonly close: () => Promise<void>
}

/** A contender module's factory. */
export type Make = (origin: string) => Promise<Client>

/** The API key every contender sends (the server ignores it). */
export const apiKey = "sk-bench-not-a-real-key"

/** Accumulates streamed text, stamping the first and last delivery. */
export class TextSink {
  text = ""
  deltas = 0
  firstAt: number | undefined = undefined
  lastAt: number | undefined = undefined
  add(piece: string): void {
    this.text += piece
    this.deltas++
    const now = performance.now()
    this.firstAt ??= now
    this.lastAt = now
  }
}
