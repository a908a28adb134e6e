// The code view: the connector as YAML in CodeMirror 6 (highlighting, line numbers, search, undo),
// with problems shown in the gutter and under the line they belong to.
import { basicSetup } from 'codemirror';
import { yaml } from '@codemirror/lang-yaml';
import { lintGutter, setDiagnostics, type Diagnostic } from '@codemirror/lint';
import { EditorState, type Extension } from '@codemirror/state';
import { EditorView } from '@codemirror/view';

/** A problem at a place in the text: a 1-based line and column, or a character range. */
export interface TextProblem {
  message: string;
  line?: number;
  column?: number;
  from?: number;
  to?: number;
}

export class CodeView {
  readonly element: HTMLElement;
  private readonly view: EditorView;
  private readonly extensions: Extension[];
  /** True while the page itself sets the text: that is not an edit. */
  private setting = false;

  constructor(options: { readOnly: boolean; onChange: () => void }) {
    this.element = document.createElement('div');
    this.element.className = 'code-view';
    this.extensions = [
      basicSetup,
      yaml(),
      lintGutter(),
      EditorState.tabSize.of(2),
      EditorState.readOnly.of(options.readOnly),
      EditorView.contentAttributes.of({ 'aria-label': 'The connector as YAML', spellcheck: 'false' }),
      EditorView.updateListener.of((update) => {
        if (update.docChanged && !this.setting) options.onChange();
      }),
    ];
    this.view = new EditorView({ parent: this.element, state: EditorState.create({ extensions: this.extensions }) });
  }

  get text(): string {
    return this.view.state.doc.toString();
  }

  /** Shows `text` as the page's own change: it does not count as an edit, and undo can go back past it. */
  set text(text: string) {
    this.setting = true;
    try {
      if (text !== this.text) this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text } });
    } finally {
      this.setting = false;
    }
    this.clearProblems();
  }

  /**
   * Starts afresh with `text`, the connector as the API last gave it: the undo history goes too, or
   * undo after a save would bring back the secrets typed before it, which the API only ever masks.
   */
  reset(text: string): void {
    this.view.setState(EditorState.create({ doc: text, extensions: this.extensions }));
  }

  /** Marks the problems in the text and scrolls the first into view. */
  showProblems(problems: TextProblem[]): void {
    const doc = this.view.state.doc;
    const diagnostics: Diagnostic[] = problems.map((p) => {
      let from = p.from ?? 0;
      let to = p.to ?? from;
      if (p.from === undefined && p.line !== undefined) {
        const line = doc.line(Math.min(Math.max(1, p.line), doc.lines));
        from = Math.min(line.from + Math.max(0, (p.column ?? 1) - 1), line.to);
        to = line.to > from ? line.to : from;
      }
      from = Math.min(from, doc.length);
      to = Math.min(Math.max(to, from), doc.length);
      return { from, to, severity: 'error', message: p.message };
    });
    this.view.dispatch(setDiagnostics(this.view.state, diagnostics));
    if (diagnostics[0]) this.view.dispatch({ effects: EditorView.scrollIntoView(diagnostics[0].from, { y: 'center' }) });
  }

  clearProblems(): void {
    this.view.dispatch(setDiagnostics(this.view.state, []));
  }

  /** The 1-based line of a character offset. */
  lineAt(offset: number): number {
    return this.view.state.doc.lineAt(Math.min(offset, this.view.state.doc.length)).number;
  }

  focus(): void {
    this.view.focus();
  }
}
