/**
 * RFC 3164 timestamps have no year. Infer it from a reference time (the
 * file's mtime, or a year given by the user) and roll it over when the month
 * wraps from December to January within one stream.
 */
export class YearInferrer {
  private year: number;
  private lastMonth = -1;
  private readonly refMonth: number;
  private readonly fixed: boolean;
  /** Bumped when the state is replaced, so a memo of an earlier answer knows it is stale. */
  generation = 0;

  /** `refTime` in epoch ms; `fixedYear` pins the year of the first line. */
  constructor(refTime: number, fixedYear?: number) {
    const ref = new Date(refTime);
    this.year = fixedYear ?? ref.getUTCFullYear();
    this.refMonth = ref.getUTCMonth();
    this.fixed = fixedYear !== undefined;
  }

  /** Year for a line of `month` (0-based), in stream order. */
  yearFor(month: number): number {
    if (this.lastMonth < 0) {
      // A log cannot be from the future: a first line two or more months
      // after the reference month belongs to the year before (a December
      // log read in January).
      if (!this.fixed && month - this.refMonth > 1) this.year -= 1;
    } else if (month < this.lastMonth - 6) {
      this.year += 1; // Dec → Jan
    } else if (month > this.lastMonth + 6) {
      this.year -= 1; // a few late December lines after January ones
    }
    this.lastMonth = month;
    return this.year;
  }

  /** Where the inference stands (for a resumable stream's checkpoint). */
  state(): { year: number; lastMonth: number } {
    return { year: this.year, lastMonth: this.lastMonth };
  }

  /** Continue from state() taken on the same stream. */
  restoreState(s: { year: number; lastMonth: number }): void {
    this.year = s.year;
    this.lastMonth = s.lastMonth;
    this.generation++;
  }
}
