/** Idle timeouts for long streams, which get no deadline: a stream silent for too long is given up instead of waited on. */

export interface IdleTimer {
  /** Something arrived (or was sent): the countdown starts again. */
  touch(): void;
  /** Disarms the timer for good. */
  stop(): void;
}

/**
 * Calls `onIdle` once `ms` pass without touch() (at most once; stop() disarms it). The timer does not keep the
 * process alive: the stream it watches does that.
 */
export function idleTimer(ms: number, onIdle: () => void): IdleTimer {
  let t: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (): void => {
    clearTimeout(t);
    if (stopped) return;
    t = setTimeout(() => {
      stopped = true;
      onIdle();
    }, ms);
    t.unref();
  };
  arm();
  return {
    touch: arm,
    stop: () => {
      stopped = true;
      clearTimeout(t);
    },
  };
}
