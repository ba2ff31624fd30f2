// Other people's cursors and selections in CodeMirror: a caret with a name label in their
// color, and their selection shaded in the same color. Positions come from the wasm client,
// which maps each remote selection's CRDT anchors to current UTF-16 offsets.

import { StateEffect, StateField } from '@codemirror/state';
import { Decoration, EditorView, WidgetType } from '@codemirror/view';

/** Replace the remote cursors: `[{connection, name, color, anchor, head, recent}]` (`recent`:
 * the person typed or moved there a moment ago, so their name shows). */
export const setRemoteCursors = StateEffect.define();

class CaretWidget extends WidgetType {
  constructor(name, color, recent) {
    super();
    this.name = name;
    this.color = color;
    this.recent = recent;
  }

  eq(other) {
    return other.name === this.name && other.color === this.color && other.recent === this.recent;
  }

  toDOM() {
    const caret = document.createElement('span');
    caret.className = this.recent ? 'remote-caret recent' : 'remote-caret';
    // Not part of the text: screen readers hear who joins and leaves from the people list.
    caret.setAttribute('aria-hidden', 'true');
    caret.style.borderLeftColor = this.color;
    const label = document.createElement('span');
    label.className = 'remote-name';
    label.style.backgroundColor = this.color;
    label.style.color = readableOn(this.color);
    label.textContent = this.name;
    caret.append(label);
    return caret;
  }

  ignoreEvent() {
    return true;
  }
}

/** Relative luminance of a `#rrggbb` colour (WCAG 2). */
function luminance(hex) {
  const channels = [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16) / 255);
  const [r, g, b] = channels.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/**
 * Black or white, whichever reads better on `background`: one of the two always has a
 * contrast of at least 4.58:1 (WCAG AA asks 4.5:1). Any colour that is not `#rrggbb` gets
 * white.
 */
export function readableOn(background) {
  if (!/^#[0-9a-fA-F]{6}$/.test(background ?? '')) return '#fff';
  const l = luminance(background);
  return (1.05) / (l + 0.05) >= (l + 0.05) / 0.05 ? '#fff' : '#000';
}

function build(peers, docLength) {
  const ranges = [];
  for (const peer of peers) {
    if (peer.head == null || peer.head > docLength) continue;
    const anchor = peer.anchor == null ? peer.head : Math.min(peer.anchor, docLength);
    const from = Math.min(anchor, peer.head);
    const to = Math.max(anchor, peer.head);
    if (from < to) {
      ranges.push(
        Decoration.mark({
          class: 'remote-selection',
          attributes: { style: `background-color: ${peer.color}33`, 'data-peer': peer.name },
        }).range(from, to),
      );
    }
    ranges.push(
      Decoration.widget({ widget: new CaretWidget(peer.name, peer.color, Boolean(peer.recent)), side: 1 }).range(
        peer.head,
      ),
    );
  }
  return Decoration.set(ranges, true);
}

export const remoteCursors = StateField.define({
  create: () => Decoration.none,
  update(decorations, tr) {
    let next = decorations.map(tr.changes);
    for (const effect of tr.effects) {
      if (effect.is(setRemoteCursors)) next = build(effect.value, tr.state.doc.length);
    }
    return next;
  },
  provide: (field) => EditorView.decorations.from(field),
});
