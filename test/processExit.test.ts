/**
 * A finished program exits: no timer or pool of ours keeps Node's event loop alive, even when
 * the providers' scopes are never closed (a `ManagedRuntime` never disposed).
 */
import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"

const fixture = Path.join(import.meta.dirname, "fixtures", "exit-after-calls.ts")

describe("process exit", () => {
  it("a program whose providers were never closed exits once its work is done", async () => {
    const started = Date.now()
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = ChildProcess.execFile(
        process.execPath,
        ["--import", "tsx", fixture],
        { cwd: Path.join(import.meta.dirname, ".."), timeout: 20_000 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number | null), stdout, stderr })
      )
      child.stdin?.end()
    })
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe("3 replies")
    expect(result.code).toBe(0)
    // Exits at once: the providers' timeout is 10 minutes, the child is killed after 20 s.
    expect(Date.now() - started).toBeLessThan(20_000)
  }, 30_000)
})
