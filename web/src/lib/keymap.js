// The editor's keys: CodeMirror's default keymap, cut to what a plain-text document uses.
//
// `defaultKeymap` binds commands that need a language (Enter through `insertNewlineAndIndent`,
// comment toggling, syntax selection, bracket matching, indentation by the language's unit), and
// even Backspace goes through @codemirror/language (it deletes an indent unit in leading
// spaces): importing any of them puts @codemirror/language and @lezer/common in the bundle,
// about 9 KB of brotli on a first open (issue 21) for a page that has no language. This keymap
// binds the same keys to commands that need none:
// - Enter keeps the line's indentation (what `insertNewlineAndIndent` does without a language);
// - Backspace and Delete (and the macOS Ctrl-h / Ctrl-d) delete the selection, or one grapheme
//   cluster, or the line break at a line's edge: `deleteChar` below, CodeMirror's `deleteByChar`
//   without the indent-unit step (one space at a time in leading spaces);
// - left out: Mod-i (select syntax), Mod-/ and Alt-A (comments), Mod-Alt-\ (reindent),
//   Shift-Mod-\ (matching bracket), Alt-ArrowLeft/Right (syntax moves), Mod-[ / Mod-] (indent
//   by the language's unit) and Mod-Enter (blank line with the language's indentation).
// web/build.mjs treats @lezer/* as free of side effects, so that nothing of them is bundled.
import {
  addCursorAbove,
  addCursorBelow,
  copyLineDown,
  copyLineUp,
  cursorCharLeft,
  cursorCharRight,
  cursorDocEnd,
  cursorDocStart,
  cursorGroupLeft,
  cursorGroupRight,
  cursorLineBoundaryBackward,
  cursorLineBoundaryForward,
  cursorLineBoundaryLeft,
  cursorLineBoundaryRight,
  cursorLineDown,
  cursorLineEnd,
  cursorLineStart,
  cursorLineUp,
  cursorPageDown,
  cursorPageUp,
  deleteGroupBackward,
  deleteGroupForward,
  deleteLine,
  deleteLineBoundaryBackward,
  deleteLineBoundaryForward,
  deleteToLineEnd,
  insertNewlineKeepIndent,
  moveLineDown,
  moveLineUp,
  selectAll,
  selectCharLeft,
  selectCharRight,
  selectDocEnd,
  selectDocStart,
  selectGroupLeft,
  selectGroupRight,
  selectLine,
  selectLineBoundaryBackward,
  selectLineBoundaryForward,
  selectLineBoundaryLeft,
  selectLineBoundaryRight,
  selectLineDown,
  selectLineUp,
  selectLineEnd,
  selectLineStart,
  selectPageDown,
  selectPageUp,
  simplifySelection,
  splitLine,
  toggleTabFocusMode,
  transposeChars,
} from '@codemirror/commands';
import { EditorSelection, findClusterBreak } from '@codemirror/state';
import { EditorView } from '@codemirror/view';

/**
 * Deletes each selection, or where it is a cursor, the grapheme cluster before it (after it,
 * when `forward`) or the line break at the line's edge: CodeMirror's `deleteBy` and
 * `deleteByChar` (atomic ranges skipped, variation selectors deleted with their character)
 * without the indent-unit step.
 * @param {boolean} forward
 * @returns {import('@codemirror/view').Command}
 */
function deleteChar(forward) {
  return (view) => {
    const { state } = view;
    if (state.readOnly) return false;
    const skipAtomic = (pos, ahead) => {
      for (const ranges of state.facet(EditorView.atomicRanges).map((f) => f(view))) {
        ranges.between(pos, pos, (from, to) => {
          if (from < pos && to > pos) pos = ahead ? to : from;
        });
      }
      return pos;
    };
    let event = 'delete.selection';
    const changes = state.changeByRange((range) => {
      let { from, to } = range;
      if (from === to) {
        const line = state.doc.lineAt(from);
        let towards = line.from + findClusterBreak(line.text, from - line.from, forward, forward);
        if (towards === from && line.number !== (forward ? state.doc.lines : 1)) towards += forward ? 1 : -1;
        else if (!forward && /[\ufe00-\ufe0f]/.test(line.text.slice(towards - line.from, from - line.from))) {
          towards = line.from + findClusterBreak(line.text, towards - line.from, false, false);
        }
        if (towards < from) {
          event = 'delete.backward';
          towards = skipAtomic(towards, false);
        } else if (towards > from) {
          event = 'delete.forward';
          towards = skipAtomic(towards, true);
        }
        from = Math.min(from, towards);
        to = Math.max(to, towards);
      } else {
        from = skipAtomic(from, false);
        to = skipAtomic(to, true);
      }
      return from === to ? { range } : { changes: { from, to }, range: EditorSelection.cursor(from, from < range.head ? -1 : 1) };
    });
    if (changes.changes.empty) return false;
    const effects = event === 'delete.selection' ? EditorView.announce.of(state.phrase('Selection deleted')) : undefined;
    view.dispatch(state.update(changes, { scrollIntoView: true, userEvent: event, effects }));
    return true;
  };
}
export const deleteCharBackward = deleteChar(false);
export const deleteCharForward = deleteChar(true);

/** CodeMirror's `emacsStyleKeymap` (bound on macOS), with the delete commands above. */
const emacsStyleKeymap = [
  { key: 'Ctrl-b', run: cursorCharLeft, shift: selectCharLeft, preventDefault: true },
  { key: 'Ctrl-f', run: cursorCharRight, shift: selectCharRight },
  { key: 'Ctrl-p', run: cursorLineUp, shift: selectLineUp },
  { key: 'Ctrl-n', run: cursorLineDown, shift: selectLineDown },
  { key: 'Ctrl-a', run: cursorLineStart, shift: selectLineStart },
  { key: 'Ctrl-e', run: cursorLineEnd, shift: selectLineEnd },
  { key: 'Ctrl-d', run: deleteCharForward },
  { key: 'Ctrl-h', run: deleteCharBackward },
  { key: 'Ctrl-k', run: deleteToLineEnd },
  { key: 'Ctrl-Alt-h', run: deleteGroupBackward },
  { key: 'Ctrl-o', run: splitLine },
  { key: 'Ctrl-t', run: transposeChars },
  { key: 'Ctrl-v', run: cursorPageDown },
];


/** @type {import('@codemirror/view').KeyBinding[]} */
export const plainTextKeymap = [
  { key: 'Alt-ArrowUp', run: moveLineUp },
  { key: 'Shift-Alt-ArrowUp', run: copyLineUp },
  { key: 'Alt-ArrowDown', run: moveLineDown },
  { key: 'Shift-Alt-ArrowDown', run: copyLineDown },
  { key: 'Mod-Alt-ArrowUp', run: addCursorAbove },
  { key: 'Mod-Alt-ArrowDown', run: addCursorBelow },
  { key: 'Escape', run: simplifySelection },
  { key: 'Alt-l', mac: 'Ctrl-l', run: selectLine },
  { key: 'Shift-Mod-k', run: deleteLine },
  { key: 'Ctrl-m', mac: 'Shift-Alt-m', run: toggleTabFocusMode },
  // CodeMirror's `standardKeymap`, Enter aside.
  { key: 'ArrowLeft', run: cursorCharLeft, shift: selectCharLeft, preventDefault: true },
  { key: 'Mod-ArrowLeft', mac: 'Alt-ArrowLeft', run: cursorGroupLeft, shift: selectGroupLeft, preventDefault: true },
  { mac: 'Cmd-ArrowLeft', run: cursorLineBoundaryLeft, shift: selectLineBoundaryLeft, preventDefault: true },
  { key: 'ArrowRight', run: cursorCharRight, shift: selectCharRight, preventDefault: true },
  { key: 'Mod-ArrowRight', mac: 'Alt-ArrowRight', run: cursorGroupRight, shift: selectGroupRight, preventDefault: true },
  { mac: 'Cmd-ArrowRight', run: cursorLineBoundaryRight, shift: selectLineBoundaryRight, preventDefault: true },
  { key: 'ArrowUp', run: cursorLineUp, shift: selectLineUp, preventDefault: true },
  { mac: 'Cmd-ArrowUp', run: cursorDocStart, shift: selectDocStart },
  { mac: 'Ctrl-ArrowUp', run: cursorPageUp, shift: selectPageUp },
  { key: 'ArrowDown', run: cursorLineDown, shift: selectLineDown, preventDefault: true },
  { mac: 'Cmd-ArrowDown', run: cursorDocEnd, shift: selectDocEnd },
  { mac: 'Ctrl-ArrowDown', run: cursorPageDown, shift: selectPageDown },
  { key: 'PageUp', run: cursorPageUp, shift: selectPageUp },
  { key: 'PageDown', run: cursorPageDown, shift: selectPageDown },
  { key: 'Home', run: cursorLineBoundaryBackward, shift: selectLineBoundaryBackward, preventDefault: true },
  { key: 'Mod-Home', run: cursorDocStart, shift: selectDocStart },
  { key: 'End', run: cursorLineBoundaryForward, shift: selectLineBoundaryForward, preventDefault: true },
  { key: 'Mod-End', run: cursorDocEnd, shift: selectDocEnd },
  { key: 'Enter', run: insertNewlineKeepIndent, shift: insertNewlineKeepIndent },
  { key: 'Mod-a', run: selectAll },
  { key: 'Backspace', run: deleteCharBackward, shift: deleteCharBackward, preventDefault: true },
  { key: 'Delete', run: deleteCharForward, preventDefault: true },
  { key: 'Mod-Backspace', mac: 'Alt-Backspace', run: deleteGroupBackward, preventDefault: true },
  { key: 'Mod-Delete', mac: 'Alt-Delete', run: deleteGroupForward, preventDefault: true },
  { mac: 'Mod-Backspace', run: deleteLineBoundaryBackward, preventDefault: true },
  { mac: 'Mod-Delete', run: deleteLineBoundaryForward, preventDefault: true },
  ...emacsStyleKeymap.map((binding) => ({ mac: binding.key, run: binding.run, shift: binding.shift })),
];
