/**
 * One request in flight, shared by both transports (the SDKs' `fetch`, and Effect's `HttpClient`):
 * the one object per call that its deadline, its abort and its end are read from, instead of
 * flags that one closure sets and a finalizer elsewhere reads.
 *
 * Owned by the call that sent the request. Its deadline covers the wait for the reply's headers
 * (and, for a complete call, its body); a stream then arms the same deadline again for each read
 * of its body (`Sse.timedRead`). When the deadline falls due, the request is aborted and the call
 * fails with `TimeoutError`; when the call ends for any other reason (interrupted, failed,
 * abandoned by its consumer, or ended at its terminal event with the connection still open), its
 * finalizer `release`s it, which aborts it unless its reply was read to the end.
 */
import type * as Watchdog from "./watchdog.js"

/** One request in flight. */
export class InFlight {
  /** The reply was read to its end: there is nothing to abort. */
  finished = false
  /**
   * How to let go of a reply whose terminal event arrived but whose body was not read to its end
   * (the call path stops reading at the `Finish`): cancelling the body is cheaper than aborting the
   * request (no `AbortError` through the SDK's and `undici`'s listeners) and closes a connection
   * the server keeps open.
   */
  letGo: (() => void) | undefined = undefined
  private timedOutFlag = false
  private aborted = false
  private waiting: (() => void) | undefined = undefined
  /** The call's deadline (one timeout from the request; armed again by each read of a stream). */
  readonly deadline: Watchdog.Deadline

  constructor(
    private readonly watchdog: Watchdog.Watchdog,
    /** Aborts the request: closes its socket (an `AbortController`, or the request's `Scope`). */
    private readonly cut: () => void
  ) {
    this.deadline = watchdog.arm(() => {
      this.timedOutFlag = true
      const waiting = this.waiting
      this.abort()
      if (waiting !== undefined) waiting()
    })
  }

  /** Whether the deadline fell due: the call fails with `TimeoutError`, whatever the request returned. */
  get timedOut(): boolean {
    return this.timedOutFlag
  }

  /** Runs `onTimeout` if the deadline falls due while the call waits for the reply (its headers). */
  awaitReply(onTimeout: () => void): void {
    this.waiting = onTimeout
  }

  /**
   * The reply (its headers, or a complete body) arrived: the wait is over. `false` when it came
   * too late (the call has already failed with `TimeoutError`), or after an abort.
   */
  answered(): boolean {
    this.waiting = undefined
    if (this.timedOutFlag || this.aborted) return false
    this.watchdog.disarm(this.deadline)
    return true
  }

  /** Aborts the request, once. */
  abort(): void {
    if (this.aborted) return
    this.aborted = true
    this.waiting = undefined
    this.cut()
  }

  /** The end of the call, whatever happened: disarms the deadline, and aborts unless the reply was read to its end. */
  release(): void {
    this.waiting = undefined
    this.watchdog.disarm(this.deadline)
    if (this.finished) return
    const letGo = this.letGo
    if (letGo !== undefined && !this.aborted) {
      this.aborted = true
      letGo()
    } else {
      this.abort()
    }
  }
}
