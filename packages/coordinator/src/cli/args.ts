/** Numeric option parsers for commander, so every command rejects bad numbers with the flag's name the same way. */
import { InvalidArgumentError } from 'commander';

function numeric(flag: string, ok: (n: number) => boolean, what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!ok(n)) throw new InvalidArgumentError(`${flag} must be ${what}, got "${v}"`);
    return n;
  };
}

export const intArg = (flag: string) => numeric(flag, Number.isInteger, 'an integer');
export const numArg = (flag: string) => numeric(flag, Number.isFinite, 'a number');
export const posIntArg = (flag: string) => numeric(flag, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
export const positiveArg = (flag: string) => numeric(flag, (n) => n > 0, 'a positive number');
export const fractionArg = (flag: string) => numeric(flag, (n) => n >= 0 && n <= 1, 'in [0, 1]');
