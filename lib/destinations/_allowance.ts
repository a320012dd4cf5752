/**
 * How much may run at once (the object-store core's uploads, and the bytes of their request
 * bodies), handed out first come first served.
 *
 * @example
 * ```ts
 * const sending = new Allowance(16 << 20);
 * await sending.acquire(8 << 20); // waits while other bodies hold the room
 * try {
 *   // ... send the body
 * } finally {
 *   sending.release(8 << 20);
 * }
 * ```
 */
/**
 * At most `limit` (uploads, or bytes) at once; `acquire` waits for room, first come first served
 * (a large part is not passed over by small files for ever). An amount larger than the limit is
 * let through alone, so that nothing waits forever.
 */
export class Allowance {
  private used = 0;
  private readonly waiting: Array<{ amount: number; go: () => void }> = [];
  constructor(private readonly limit: number) {}
  async acquire(amount = 1): Promise<void> {
    if (this.waiting.length === 0 && this.fits(amount)) {
      this.used += amount;
      return;
    }
    // Counted for this waiter by `release`, when its turn comes.
    await new Promise<void>((go) => this.waiting.push({ amount, go }));
  }
  release(amount = 1): void {
    this.used -= amount;
    while (this.waiting.length > 0 && this.fits(this.waiting[0].amount)) {
      const next = this.waiting.shift()!;
      this.used += next.amount;
      next.go();
    }
  }
  private fits(amount: number): boolean {
    return this.used === 0 || this.used + amount <= this.limit;
  }
}
