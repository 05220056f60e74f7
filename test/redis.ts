/**
 * Test harness: a real `redis-server` of the test's own on a free 127.0.0.1 port, as a scoped
 * Effect resource. Never the machine's shared Redis on 6379: each test starts its own, so it can
 * kill, restart and pause it.
 *
 * - No persistence by default (`--save '' --appendonly no`); `aof: "always" | "everysec"` turns
 *   on the append-only file in the server's own temp dir (kept across `restart`, removed at the end).
 * - `stdio: "ignore"`: an inherited pipe of a server left behind would keep the runner's pipeline open.
 * - The binary comes from `REDIS_SERVER` or `PATH`; when it is missing the harness fails with a
 *   message saying how to install it (no test skips).
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export interface RedisServerOptions {
  /** Append-only file with this fsync policy; default none (no persistence at all). */
  readonly aof?: "always" | "everysec" | undefined
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** SIGKILL: a crash (nothing flushed beyond what the AOF policy already wrote). */
  readonly kill: Effect.Effect<void>
  /** SIGTERM (clean shutdown) unless already dead, then a new server on the same port and dir. */
  readonly restart: Effect.Effect<void>
  /** Starts the server again after `kill` (same port and dir). */
  readonly start: Effect.Effect<void>
  /** SIGSTOP: the server holds its connections but answers nothing. */
  readonly pause: Effect.Effect<void>
  /** SIGCONT. */
  readonly resume: Effect.Effect<void>
  /** FLUSHALL through a short-lived connection. */
  readonly flushall: Effect.Effect<void>
  /** Sends one command on a short-lived connection and returns the raw RESP reply. */
  readonly command: (...args: ReadonlyArray<string>) => Effect.Effect<string>
}

const binary = (): string | undefined => {
  const fromEnv = process.env["REDIS_SERVER"]
  if (fromEnv !== undefined && fromEnv !== "") return Fs.existsSync(fromEnv) ? fromEnv : undefined
  for (const dir of (process.env["PATH"] ?? "").split(Path.delimiter)) {
    const candidate = Path.join(dir, "redis-server")
    if (dir !== "" && Fs.existsSync(candidate)) return candidate
  }
  for (const candidate of ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]) {
    if (Fs.existsSync(candidate)) return candidate
  }
  return undefined
}

const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const encode = (args: ReadonlyArray<string>): string =>
  `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")

/** One command on a fresh socket; the first reply line(s) as text. Fails when nothing answers within `millis`. */
const rawCommand = (port: number, args: ReadonlyArray<string>, millis = 1_000): Effect.Effect<string, Error> =>
  Effect.async<string, Error>((resume) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    let data = ""
    const timer = setTimeout(() => {
      socket.destroy()
      resume(Effect.fail(new Error(`redis on ${port}: no reply to ${args[0]} within ${millis} ms`)))
    }, millis)
    socket.on("connect", () => socket.write(encode(args)))
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8")
      if (data.endsWith("\r\n")) {
        clearTimeout(timer)
        socket.destroy()
        resume(Effect.succeed(data))
      }
    })
    socket.on("error", (error) => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.fail(error))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

/**
 * Starts a `redis-server` for the scope; stops it (SIGKILL) and removes its dir when the scope closes.
 */
export const make = (options: RedisServerOptions = {}): Effect.Effect<RedisServer, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const bin = binary()
    if (bin === undefined) {
      return yield* Effect.fail(
        new Error(
          "redis-server not found (set REDIS_SERVER or put it on PATH): " +
            "apt-get update && apt-get install -y redis-server"
        )
      )
    }
    const port = yield* freePort
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "orx-redis-"))
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--dir",
      dir,
      "--daemonize",
      "no",
      "--maxmemory-policy",
      "noeviction",
      ...(options.aof === undefined
        ? ["--appendonly", "no"]
        : ["--appendonly", "yes", "--appendfsync", options.aof])
    ]
    const child = yield* Ref.make<ChildProcess.ChildProcess | undefined>(undefined)

    const spawn = Effect.gen(function*() {
      const proc = ChildProcess.spawn(bin, args, { stdio: "ignore" })
      yield* Ref.set(child, proc)
      // Poll PING every 20 ms in real time (the harness runs outside TestClock), for at most 5 s.
      const deadline = Date.now() + 5_000
      while (true) {
        if (proc.exitCode !== null) {
          return yield* Effect.fail(new Error(`redis-server on ${port} exited with code ${proc.exitCode}`))
        }
        const reply = yield* Effect.either(rawCommand(port, ["PING"], 200))
        if (reply._tag === "Right" && reply.right.startsWith("+PONG")) return
        if (Date.now() > deadline) {
          return yield* Effect.fail(new Error(`redis-server on ${port} did not answer PING within 5 s`))
        }
        yield* pauseMillis(20)
      }
    })

    const signal = (sig: NodeJS.Signals) => Effect.flatMap(Ref.get(child), (proc) => Effect.sync(() => proc?.kill(sig)))

    const exited = Effect.flatMap(
      Ref.get(child),
      (proc) =>
        proc === undefined || proc.exitCode !== null || proc.signalCode !== null
          ? Effect.void
          : Effect.async<void>((resume) => {
            proc.once("exit", () => resume(Effect.void))
          })
    )

    const kill = Effect.zipRight(signal("SIGKILL"), exited)

    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Effect.zipRight(signal("SIGCONT"), kill),
        Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
    )
    yield* spawn.pipe(Effect.mapError((e) => new Error(`redis-server failed to start: ${e.message}`)))

    const command = (...commandArgs: ReadonlyArray<string>) => Effect.orDie(rawCommand(port, commandArgs))

    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      kill,
      start: Effect.orDie(spawn),
      restart: Effect.orDie(Effect.zipRight(Effect.zipRight(signal("SIGTERM"), exited), spawn)),
      pause: signal("SIGSTOP"),
      resume: signal("SIGCONT"),
      flushall: Effect.asVoid(command("FLUSHALL")),
      command
    } satisfies RedisServer
  })

const pauseMillis = (millis: number): Effect.Effect<void> =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))
