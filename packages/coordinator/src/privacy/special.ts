/**
 * Log-space helpers for the accountant: log(exp(a) + exp(b)), log(exp(a) - exp(b)), and log(erfc(x)) that stays
 * accurate where erfc(x) underflows (x up to ~1e150).
 */

/** log(exp(a) + exp(b)); -Infinity stands for 0. */
export function logAdd(a: number, b: number): number {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  if (lo === -Infinity) return hi;
  return Math.log1p(Math.exp(lo - hi)) + hi;
}

/** log(exp(a) - exp(b)) for a >= b; throws when the difference would be negative. */
export function logSub(a: number, b: number): number {
  if (a < b) throw new RangeError(`logSub: the difference must be non-negative (log values ${a} < ${b})`);
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  const d = a - b;
  // expm1 overflows above ~709; the difference is then exp(a) to double precision.
  return d > 700 ? a : Math.log(Math.expm1(d)) + b;
}

// W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-637:
// the coefficient sets of SPECFUN CALERF (relative error ~1e-16 in double precision).
const A = [3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947, 0.185777706184603153];
const B = [23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062];
const C = [
  0.564188496988670089, 8.88314979438837594, 66.1191906371416295, 298.635138197400131, 881.95222124176909, 1712.04761263407058,
  2051.07837782607147, 1230.33935479799725, 2.15311535474403846e-8,
];
const D = [
  15.7449261107098347, 117.693950891312499, 537.181101862009858, 1621.38957456669019, 3290.79923573345963, 4362.61909014324716,
  3439.36767414372164, 1230.33935480374942,
];
const P = [0.305326634961232344, 0.360344899949804439, 0.125781726111229246, 0.0160837851487422766, 6.58749161529837803e-4, 0.0163153871373020978];
const Q = [2.56852019228982242, 1.87295284992346047, 0.527905102951428412, 0.0605183413124413191, 0.00233520497626869185];
const INV_SQRT_PI = 0.56418958354775628695;

/** erf(x) for |x| <= 0.46875. */
function erfSmall(x: number): number {
  const z = x * x;
  let num = A[4]! * z;
  let den = z;
  for (let i = 0; i < 3; i++) {
    num = (num + A[i]!) * z;
    den = (den + B[i]!) * z;
  }
  return (x * (num + A[3]!)) / (den + B[3]!);
}

/** log(erfc(y)) + y^2 for y > 0.46875 (the scaled complement, in log space), split as Cody does for accuracy. */
function logScaledErfc(y: number): number {
  let r: number;
  if (y <= 4) {
    let num = C[8]! * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + C[i]!) * y;
      den = (den + D[i]!) * y;
    }
    r = (num + C[7]!) / (den + D[7]!);
  } else {
    const z = 1 / (y * y);
    let num = P[5]! * z;
    let den = z;
    for (let i = 0; i < 4; i++) {
      num = (num + P[i]!) * z;
      den = (den + Q[i]!) * z;
    }
    r = (INV_SQRT_PI - (z * (num + P[4]!)) / (den + Q[4]!)) / y;
  }
  return Math.log(r);
}

/** erfc(x) for every real x (0 where it underflows). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const y = Math.abs(x);
  if (y <= 0.46875) return 1 - erfSmall(x);
  const pos = Math.exp(logErfc(y));
  return x > 0 ? pos : 2 - pos;
}

/** log(erfc(x)), accurate in the far tail where erfc itself underflows to 0. */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return -Infinity;
  const y = Math.abs(x);
  if (y <= 0.46875) return Math.log1p(-erfSmall(x));
  if (x < 0) return Math.log(2 - Math.exp(logErfc(y)));
  // -y^2 is formed as -(ys^2) - (y - ys)(y + ys) with ys = y rounded down to 1/16 (exact square), like CALERF.
  const ys = Math.trunc(y * 16) / 16;
  return -ys * ys - (y - ys) * (y + ys) + logScaledErfc(y);
}
