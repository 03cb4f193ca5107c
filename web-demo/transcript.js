// steno web demo, transcript: the server's speech_started / partial / final
// messages in, one row per utterance on the page out. A row is provisional
// (grey italic) until its final replaces the partial text in place.

import { clock } from './messages.js';

export class Transcript {
  /**
   * @param {{list: HTMLOListElement, empty: HTMLElement, copy: HTMLButtonElement,
   *          clear: HTMLButtonElement}} els
   */
  constructor(els) {
    this.els = els;
    this.rows = new Map(); // utterance index -> <li>
    els.clear.addEventListener('click', () => this.clear());
  }

  /** Speech heard, no words yet: an empty provisional row (CSS shows dots). */
  speechStarted(m) {
    this.row(m.utterance);
  }

  partial(m) {
    const li = this.row(m.utterance);
    if (li.dataset.state === 'final') return; // a late partial never undoes a final
    li.querySelector('.text').textContent = m.text.trim();
    li.querySelector('.when').textContent = `${clock(m.start_ms)}–${clock(m.end_ms)}`;
    keepInView(li);
  }

  final(m, latencyMs) {
    const li = this.row(m.utterance);
    const text = m.text.trim();
    if (!text) {
      // Whisper heard no words (a cough, a door): nothing to keep.
      li.remove();
      this.rows.delete(m.utterance);
      this.els.empty.hidden = this.rows.size > 0;
      return;
    }
    li.dataset.state = 'final';
    li.querySelector('.text').textContent = text;
    li.querySelector('.when').textContent = `${clock(m.start_ms)}–${clock(m.end_ms)}`;
    const lat = li.querySelector('.lat');
    lat.textContent = latencyMs != null ? `${latencyMs} ms` : '';
    // Under a second reads as instant; past 2.5 s a speaker notices the wait.
    lat.dataset.speed = latencyMs < 1000 ? 'fast' : latencyMs < 2500 ? 'fair' : 'slow';
    lat.title = `On screen ${latencyMs} ms after the end of this speech; the model took ${m.processing_ms} ms`
      + (m.degraded ? ' (the server was busy: a faster, slightly less accurate pass)' : '');
    this.els.copy.disabled = false;
    keepInView(li);
  }

  /** The settled text, one utterance a line. */
  text() {
    return [...this.els.list.querySelectorAll('.utterance[data-state="final"] .text')]
      .map((p) => p.textContent)
      .join('\n');
  }

  clear() {
    for (const li of this.rows.values()) li.remove();
    this.rows.clear();
    this.els.empty.hidden = false;
    this.els.copy.disabled = true;
    this.els.clear.disabled = true;
  }

  row(index) {
    let li = this.rows.get(index);
    if (!li) {
      li = document.createElement('li');
      li.className = 'utterance';
      li.dataset.utterance = String(index);
      li.dataset.state = 'partial';
      li.innerHTML = '<p class="text"></p><div class="meta"><span class="when"></span><span class="lat"></span></div>';
      this.els.list.append(li);
      this.rows.set(index, li);
      this.els.empty.hidden = true;
      this.els.clear.disabled = false;
    }
    return li;
  }
}

function keepInView(li) {
  if (li.getBoundingClientRect().bottom > window.innerHeight) {
    li.scrollIntoView({ block: 'end', behavior: 'smooth' });
  }
}
