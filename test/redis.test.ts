/**
 * The Redis test harness itself: a real server of the test's own, which it can kill, restart,
 * pause and flush.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as RedisHarness from "./redis.js"

describe("test/redis.ts harness", () => {
  it.live("starts its own server (never 6379), flushes, kills, restarts with AOF, pauses and resumes", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* RedisHarness.make({ aof: "always" })
      expect(redis.port).not.toBe(6379)
      expect(yield* redis.command("SET", "k", "1")).toBe("+OK\r\n")
      yield* redis.kill
      yield* redis.start
      // AOF with fsync always: the write survived SIGKILL.
      expect(yield* redis.command("GET", "k")).toBe("$1\r\n1\r\n")
      yield* redis.flushall
      expect(yield* redis.command("GET", "k")).toBe("$-1\r\n")
      yield* redis.pause
      // Paused: it accepts the connection and answers nothing (the harness gives up after 1 s).
      const paused = yield* Effect.exit(redis.command("PING"))
      expect(Exit.isFailure(paused)).toBe(true)
      yield* redis.resume
      expect(yield* redis.command("PING")).toBe("+PONG\r\n")
      yield* redis.restart
      expect(yield* redis.command("PING")).toBe("+PONG\r\n")
    })))

  it.live("without persistence a restart loses everything", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* RedisHarness.make()
      yield* redis.command("SET", "k", "1")
      yield* redis.restart
      expect(yield* redis.command("GET", "k")).toBe("$-1\r\n")
    })))

  it.live("fails clearly when redis-server is missing", () =>
    Effect.gen(function*() {
      const saved = process.env["REDIS_SERVER"]
      process.env["REDIS_SERVER"] = "/nonexistent/redis-server"
      const exit = yield* Effect.exit(Effect.scoped(RedisHarness.make()))
      if (saved === undefined) delete process.env["REDIS_SERVER"]
      else process.env["REDIS_SERVER"] = saved
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) expect(Cause.pretty(exit.cause)).toContain("apt-get install -y redis-server")
    }))
})
