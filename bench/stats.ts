/**
 * What the benchmarks share: reading `--name value` options, and the median of a sample.
 */

const args = process.argv.slice(2)

/** The value after `--name` on the command line, if given. */
export const option = (name: string): string | undefined => {
  const index = args.indexOf(name)
  return index === -1 ? undefined : args[index + 1]
}

/** The median of a sample (the mean of the two middle values when it has an even size). */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Whether `--name` is on the command line. */
export const flag = (name: string): boolean => args.includes(name)
