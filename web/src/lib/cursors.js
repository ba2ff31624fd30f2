// Other people's cursors and selections in CodeMirror: a caret with a name label in their
// color, and their selection shaded in the same color. Positions come from the wasm client,
// which maps each remote selection's CRDT anchors to current UTF-16 offsets.

import { StateEffect, StateField } from '@codemirror/state';
import { Decoration, EditorView, WidgetType } from '@codemirror/view';

/** Replace the remote cursors: `[{connection, name, color, anchor, head}]`. */
export const setRemoteCursors = StateEffect.define();

class CaretWidget extends WidgetType {
  constructor(name, color) {
    super();
    this.name = name;
    this.color = color;
  }

  eq(other) {
    return other.name === this.name && other.color === this.color;
  }

  toDOM() {
    const caret = document.createElement('span');
    caret.className = 'remote-caret';
    caret.style.borderLeftColor = this.color;
    const label = document.createElement('span');
    label.className = 'remote-name';
    label.style.backgroundColor = this.color;
    label.textContent = this.name;
    caret.append(label);
    return caret;
  }

  ignoreEvent() {
    return true;
  }
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
      Decoration.widget({ widget: new CaretWidget(peer.name, peer.color), side: 1 }).range(peer.head),
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
