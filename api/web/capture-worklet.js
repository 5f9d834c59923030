// AudioWorklet: microphone (Float32 at the context's rate) → PCM16 mono at the relay's
// rate, posted in 20 ms chunks. The context normally runs at the relay's rate already
// (the browser resamples the microphone well); otherwise this resamples linearly.

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = options.processorOptions.targetRate;
    this.step = sampleRate / this.target; // input samples per output sample
    this.chunk = new Int16Array(Math.round(this.target / 50));
    this.filled = 0;
    this.position = 0; // fractional read position into the current block
    this.previous = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const input = channels[0];
    while (this.position < input.length) {
      const i = Math.floor(this.position);
      const frac = this.position - i;
      const before = i === 0 ? this.previous : input[i - 1];
      const sample = this.step === 1 ? input[i] : before + (input[i] - before) * frac;
      this.chunk[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(sample * 32767)));
      if (this.filled === this.chunk.length) {
        this.port.postMessage(this.chunk.slice().buffer, []);
        this.filled = 0;
      }
      this.position += this.step;
    }
    this.position -= input.length;
    this.previous = input[input.length - 1];
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
