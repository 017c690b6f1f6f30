/** Tasks from the MQTT task topic, queued for the one iterator that reads them, ending like a gRPC task stream. */
import type { TaskMsg } from '@fedge/proto';

export class TaskQueue {
  // Tasks arrive on their own topic, possibly before the reply that opened the stream; they wait here.
  private readonly queue: TaskMsg[] = [];
  private wake: (() => void) | undefined;
  private ended: Error | null | undefined; // null: ended normally

  push(task: TaskMsg): void {
    this.queue.push(task);
    this.wakeUp();
  }

  /** The first end counts: null ends the stream normally, an error makes the reader throw it (after queued tasks). */
  end(err: Error | null): void {
    if (this.ended === undefined) this.ended = err;
    this.wakeUp();
  }

  async *drain(): AsyncGenerator<TaskMsg> {
    for (;;) {
      const t = this.queue.shift();
      if (t) {
        yield t;
        continue;
      }
      if (this.ended !== undefined) {
        if (this.ended) throw this.ended;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
