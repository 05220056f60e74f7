/**
 * The budget store: where the spend and the reservations of every budget account live, behind
 * a few atomic operations (reserve across several accounts, settle, add, read). `makeMemory` is
 * the one-process store; a shared one (Redis, SCALE-OUT.md §3.3) implements the same interface
 * with the same rules, each operation one atomic script.
 *
 * Amounts are integers: nano-dollars (1e-9 USD) and tokens, so sums never drift (100 × $0.01 is
 * exactly $1, which floating point would miss).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as LLMError from "../../LLMError.js"

/** Money (integer nano-dollars) and tokens. */
export interface Amount {
  readonly nanoUsd: number
  readonly tokens: number
}

/** An account and its limit, as an operation names it. */
export interface AccountLimit {
  /** `"total"`, `"Provider:<id>"`, `"Scope:<id>"`. */
  readonly key: string
  /** `undefined`: no USD limit. */
  readonly nanoUsd: number | undefined
  readonly tokens: number | undefined
  /** A rolling window in milliseconds; `undefined`: the account's whole life. */
  readonly windowMillis: number | undefined
}

/** An account after an operation (spend within its window). */
export interface AccountState {
  readonly key: string
  readonly spent: Amount
  readonly reserved: Amount
}

/** The answer to a reservation. */
export type Reserve =
  | { readonly _tag: "Reserved"; readonly accounts: ReadonlyArray<AccountState> }
  | {
    readonly _tag: "Refused"
    /** The index (in the request's `accounts`) of the first account that refused. */
    readonly index: number
    readonly metric: "usd" | "tokens"
    readonly state: AccountState
  }

/** The answer to a settlement. */
export interface Settle {
  /** `"Duplicate"`: the reservation was settled already (or never made): nothing changed. */
  readonly _tag: "Settled" | "Duplicate"
  readonly accounts: ReadonlyArray<AccountState>
}

/** A shared store's failure (unreachable, slow, or a store that lost its state); the memory store never fails. */
export type StoreError = LLMError.SharedStateUnavailableError

/** The store. Each operation is atomic: no other operation sees it half done. */
export interface BudgetStore {
  /**
   * Reserves `estimate` on every account, or on none: an account refuses when its limit is
   * already reached (`spent + reserved >= limit`) or the estimate would pass it
   * (`spent + reserved + estimate > limit`).
   */
  readonly reserve: (request: {
    readonly id: string
    readonly accounts: ReadonlyArray<AccountLimit>
    readonly estimate: Amount
  }) => Effect.Effect<Reserve, StoreError>
  /** Replaces the reservation `id` with the actual spend, once; a second settle changes nothing. */
  readonly settle: (request: { readonly id: string; readonly actual: Amount }) => Effect.Effect<Settle, StoreError>
  /** Adds a spend made without a reservation. */
  readonly add: (request: {
    readonly accounts: ReadonlyArray<AccountLimit>
    readonly actual: Amount
  }) => Effect.Effect<ReadonlyArray<AccountState>, StoreError>
  /** An account now. */
  readonly read: (account: AccountLimit) => Effect.Effect<AccountState, StoreError>
  /** Forgets every spend and reservation; a call in flight adds its actual spend when it settles. */
  readonly reset: Effect.Effect<void, StoreError>
}

// -----------------------------------------------------------------------------
// In memory
// -----------------------------------------------------------------------------

/**
 * The spend of a rolling window: a queue of (time, amount) entries with its running sum. Entries
 * made in the same millisecond share one entry; expired entries are dropped from the head, so
 * each entry is added and removed once: amortised O(1) per operation, exact to the millisecond.
 */
class Window {
  private at: Array<number> = []
  private usd: Array<number> = []
  private tok: Array<number> = []
  private head = 0
  nanoUsd = 0
  tokens = 0

  constructor(readonly millis: number) {}

  expire(now: number): void {
    const from = now - this.millis
    const at = this.at
    let head = this.head
    while (head < at.length && at[head]! <= from) {
      this.nanoUsd -= this.usd[head]!
      this.tokens -= this.tok[head]!
      head++
    }
    if (head === at.length) {
      this.at = []
      this.usd = []
      this.tok = []
      this.head = 0
      this.nanoUsd = 0
      this.tokens = 0
    } else if (head > 1024 && head * 2 > at.length) {
      this.at = at.slice(head)
      this.usd = this.usd.slice(head)
      this.tok = this.tok.slice(head)
      this.head = 0
    } else {
      this.head = head
    }
  }

  add(now: number, nanoUsd: number, tokens: number): void {
    this.nanoUsd += nanoUsd
    this.tokens += tokens
    const last = this.at.length - 1
    if (last >= this.head && this.at[last] === now) {
      this.usd[last]! += nanoUsd
      this.tok[last]! += tokens
      return
    }
    this.at.push(now)
    this.usd.push(nanoUsd)
    this.tok.push(tokens)
  }
}

class Account {
  /** Lifetime spend, used when the account has no window. */
  nanoUsd = 0
  tokens = 0
  reservedUsd = 0
  reservedTokens = 0
  window: Window | undefined = undefined

  constructor(readonly key: string) {}

  /** The spend within the window as of `now` (drops what expired). */
  spent(limit: AccountLimit | undefined, now: number): Amount {
    const window = this.windowFor(limit)
    if (window === undefined) return { nanoUsd: this.nanoUsd, tokens: this.tokens }
    window.expire(now)
    return { nanoUsd: window.nanoUsd, tokens: window.tokens }
  }

  spend(limit: AccountLimit | undefined, now: number, nanoUsd: number, tokens: number): void {
    this.nanoUsd += nanoUsd
    this.tokens += tokens
    const window = this.windowFor(limit)
    if (window !== undefined) {
      window.expire(now)
      window.add(now, nanoUsd, tokens)
    }
  }

  state(limit: AccountLimit | undefined, now: number): AccountState {
    return {
      key: this.key,
      spent: this.spent(limit, now),
      reserved: { nanoUsd: this.reservedUsd, tokens: this.reservedTokens }
    }
  }

  private windowFor(limit: AccountLimit | undefined): Window | undefined {
    const millis = limit?.windowMillis
    if (millis === undefined) return this.window
    if (this.window === undefined || this.window.millis !== millis) this.window = new Window(millis)
    return this.window
  }
}

interface Reservation {
  readonly accounts: ReadonlyArray<AccountLimit>
  readonly estimate: Amount
  /** The store's generation when it was made: a reset forgets it. */
  readonly generation: number
}

/** Whether `estimate` fits under `limit` given what is spent and reserved. */
const fits = (limit: number | undefined, used: number, estimate: number): boolean =>
  limit === undefined || (used < limit && used + estimate <= limit)

/** The store of one process. Its operations run synchronously, hence atomically. */
export const makeMemory: Effect.Effect<BudgetStore> = Effect.sync(() => {
  let accounts = new Map<string, Account>()
  const reservations = new Map<string, Reservation>()
  let generation = 0

  const accountOf = (key: string): Account => {
    let account = accounts.get(key)
    if (account === undefined) {
      account = new Account(key)
      accounts.set(key, account)
    }
    return account
  }

  const states = (limits: ReadonlyArray<AccountLimit>, now: number): ReadonlyArray<AccountState> =>
    limits.map((limit) => accountOf(limit.key).state(limit, now))

  const reserve: BudgetStore["reserve"] = ({ accounts: limits, estimate, id }) =>
    Effect.map(Clock.currentTimeMillis, (now): Reserve => {
      for (let index = 0; index < limits.length; index++) {
        const limit = limits[index]!
        const account = accountOf(limit.key)
        const spent = account.spent(limit, now)
        if (!fits(limit.nanoUsd, spent.nanoUsd + account.reservedUsd, estimate.nanoUsd)) {
          return { _tag: "Refused", index, metric: "usd", state: account.state(limit, now) }
        }
        if (!fits(limit.tokens, spent.tokens + account.reservedTokens, estimate.tokens)) {
          return { _tag: "Refused", index, metric: "tokens", state: account.state(limit, now) }
        }
      }
      for (const limit of limits) {
        const account = accountOf(limit.key)
        account.reservedUsd += estimate.nanoUsd
        account.reservedTokens += estimate.tokens
      }
      reservations.set(id, { accounts: limits, estimate, generation })
      return { _tag: "Reserved", accounts: states(limits, now) }
    })

  const settle: BudgetStore["settle"] = ({ actual, id }) =>
    Effect.map(Clock.currentTimeMillis, (now): Settle => {
      const reservation = reservations.get(id)
      if (reservation === undefined) return { _tag: "Duplicate", accounts: [] }
      reservations.delete(id)
      const current = reservation.generation === generation
      for (const limit of reservation.accounts) {
        const account = accountOf(limit.key)
        if (current) {
          account.reservedUsd -= reservation.estimate.nanoUsd
          account.reservedTokens -= reservation.estimate.tokens
        }
        account.spend(limit, now, actual.nanoUsd, actual.tokens)
      }
      return { _tag: "Settled", accounts: states(reservation.accounts, now) }
    })

  const add: BudgetStore["add"] = ({ accounts: limits, actual }) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      for (const limit of limits) accountOf(limit.key).spend(limit, now, actual.nanoUsd, actual.tokens)
      return states(limits, now)
    })

  return {
    reserve,
    settle,
    add,
    read: (limit) => Effect.map(Clock.currentTimeMillis, (now) => accountOf(limit.key).state(limit, now)),
    reset: Effect.sync(() => {
      generation++
      accounts = new Map()
    })
  }
})

/** Dollars to integer nano-dollars. */
export const toNano = (usd: number): number => Math.round(usd * 1e9)

/** Integer nano-dollars to dollars. */
export const fromNano = (nanoUsd: number): number => nanoUsd / 1e9
