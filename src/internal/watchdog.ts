/**
 * The timer of one provider: one fiber, on Effect's clock, that enforces the provider's `timeout`
 * for every call in flight (the wait for a reply's headers, and the silence between two reads of
 * its body), instead of a timer per call and per read.
 *
 * `Effect.timeoutFail` forks a fiber and races it on every call: measured, that was a fifth of
 * what a non-streaming call cost on our side, and a fiber per network read of a stream. Every
 * deadline of one provider is the same duration from its arming, so deadlines are armed in the
 * order they fall due: a linked list in arming order is sorted, arming and disarming are O(1), and
 * one fiber sleeping until the first deadline wakes once per deadline when nothing is late. With
 * nothing armed it waits for the next arming, holding no timer: an idle provider costs nothing,
 * whatever its timeout (a zero timeout used to spin on `sleep(0)`). A sleep is cut to what a
 * JavaScript timer holds (2^31 - 1 ms, about 24.8 days: beyond that `setTimeout` fires after 1 ms,
 * which spun a timeout of `30 days`); the watchdog then looks again and sleeps the rest.
 *
 * The list is touched synchronously only (JavaScript runs one fiber at a time): by the calls that
 * arm and disarm, and by the watchdog when it wakes. On Effect's live clock the watchdog's timer is
 * `unref`'d: it never keeps a finished program alive; on any other clock (`TestClock`) it sleeps
 * with `Effect.sleep`.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** One armed deadline. Owned by the watchdog that armed it. */
export interface Deadline {
  /** Whether it fell due before it was disarmed (its `onExpire` has run). */
  readonly expired: boolean
}

interface Node extends Deadline {
  expired: boolean
  /** Whether it is in the list. */
  armed: boolean
  /** Milliseconds on the watchdog's clock. */
  at: number
  prev: Node | undefined
  next: Node | undefined
  readonly onExpire: () => void
}

/** One provider's timer. */
export interface Watchdog {
  /** The timeout every deadline is armed with. */
  readonly timeout: Duration.Duration
  /** Arms a deadline one timeout from now; `onExpire` runs once if it is not disarmed by then. */
  readonly arm: (onExpire: () => void) => Deadline
  /** Arms a deadline again, one timeout from now (a stream waiting for its next read). */
  readonly rearm: (deadline: Deadline) => void
  /** Disarms a deadline; `false` when it had already expired. */
  readonly disarm: (deadline: Deadline) => boolean
}

/** The longest delay `setTimeout` holds; a longer one fires after 1 ms. */
export const maxTimerMillis = 2 ** 31 - 1

/** Effect's own clock: real time. */
const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/**
 * A sleep on real time that does not keep the process alive: a provider that is never closed (a
 * `ManagedRuntime` never disposed) must not hold a program that has finished for its timeout. A
 * call in flight holds the process with its socket anyway.
 */
const unrefSleep = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    timer.unref()
    return Effect.sync(() => clearTimeout(timer))
  })

/** A watchdog for `timeout`, on the current clock, running as long as the current scope. */
export const make = (timeout: Duration.Duration): Effect.Effect<Watchdog, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const millis = Duration.toMillis(timeout)
    let head: Node | undefined = undefined
    let tail: Node | undefined = undefined

    const unlink = (node: Node) => {
      if (node.prev === undefined) head = node.next
      else node.prev.next = node.next
      if (node.next === undefined) tail = node.prev
      else node.next.prev = node.prev
      node.prev = undefined
      node.next = undefined
      node.armed = false
    }

    const append = (node: Node) => {
      node.at = clock.unsafeCurrentTimeMillis() + millis
      node.armed = true
      node.prev = tail
      if (tail === undefined) head = node
      else tail.next = node
      tail = node
      if (wake !== undefined) wake()
    }

    const sleep = clock === liveClock ? unrefSleep : Effect.sleep
    /** Wakes the watchdog waiting for an arming; `undefined` when it is not waiting. */
    let wake: (() => void) | undefined = undefined
    const idle: Effect.Effect<void> = Effect.async<void>((resume) => {
      wake = () => {
        wake = undefined
        resume(Effect.void)
      }
      return Effect.sync(() => {
        wake = undefined
      })
    })
    const watch: Effect.Effect<never> = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      while (head !== undefined && head.at <= now) {
        const node: Node = head
        unlink(node)
        node.expired = true
        node.onExpire()
      }
      // Deadlines fall due in arming order: nothing armed later falls due before the head.
      const next = head === undefined ? idle : sleep(Math.min(head.at - now, maxTimerMillis))
      return Effect.zipRight(next, watch)
    })
    if (Number.isFinite(millis)) yield* Effect.forkScoped(watch)

    return {
      timeout,
      arm: (onExpire) => {
        const node: Node = { expired: false, armed: false, at: 0, prev: undefined, next: undefined, onExpire }
        append(node)
        return node
      },
      rearm: (deadline) => {
        const node = deadline as Node
        if (node.expired) return
        if (node.armed) unlink(node)
        append(node)
      },
      disarm: (deadline) => {
        const node = deadline as Node
        if (node.armed) unlink(node)
        return !node.expired
      }
    }
  })
