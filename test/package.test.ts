/**
 * The package's entry points: every subpath export names a module the build emits (from a source
 * file that exists), and the subpaths offer the same modules as the package entry.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
const pkg = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as {
  readonly exports: Record<string, { readonly types: string; readonly default: string } | string | null>
}

/** `./dist/providers/OpenAI.js` -> `src/providers/OpenAI.ts` */
const sourceOf = (target: string) => Path.join(root, target.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts"))

describe("package exports", () => {
  const modules = Object.entries(pkg.exports).flatMap(([subpath, target]) =>
    typeof target === "object" && target !== null ? [{ subpath, target }] : []
  )

  it("every subpath names a source module, with its types beside it", () => {
    expect(modules.length).toBeGreaterThan(3)
    for (const { subpath, target } of modules) {
      expect(Fs.existsSync(sourceOf(target.default)), `${subpath} -> ${target.default}`).toBe(true)
      expect(target.types).toBe(target.default.replace(/\.js$/, ".d.ts"))
    }
  })

  it("the package entry re-exports exactly the modules offered as subpaths", () => {
    const index = Fs.readFileSync(Path.join(root, "src", "index.ts"), "utf8")
    const fromIndex = [...index.matchAll(/export \* as (\w+) from "\.\/(.+)\.js"/g)].map(([, name, file]) => ({
      subpath: `./${name}`,
      file: `./dist/${file}.js`
    }))
    expect(fromIndex.length).toBeGreaterThan(3)
    const subpaths = modules.filter(({ subpath }) => subpath !== "." && subpath !== "./testing")
    expect(subpaths.map(({ subpath, target }) => ({ subpath, file: target.default })).sort(bySubpath))
      .toEqual(fromIndex.sort(bySubpath))
  })
})

const bySubpath = (a: { readonly subpath: string }, b: { readonly subpath: string }) =>
  a.subpath.localeCompare(b.subpath)
