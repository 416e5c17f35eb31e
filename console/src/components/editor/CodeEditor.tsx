/**
 * A Monaco editor as a controlled React component.
 *
 *   <CodeEditor language="yaml" value={text} onChange={setText} markers={[{ line: 3, message: "…" }]} />
 *
 * Props:
 * - `language`: "typescript" | "yaml".
 * - `value` / `onChange(value)`: the text; a `value` that differs from the editor's replaces it (undo stack kept).
 * - `markers`: problems to underline, 1-based `line` (and optional `column`, `endLine`, `endColumn`; without a
 *   column the whole line), `severity` "error" (default) | "warning". They sit beside TypeScript's own diagnostics.
 * - `height`: CSS height of the editor (default 400px). `readOnly`: no edits (the editor says so when typed in).
 * - `testId`: `data-testid` of the container.
 * - `path`: the model's file name (e.g. "premium.ts"); TypeScript sees the text under it. Default: one of its own.
 * - `onEditor(editor | null)`: the Monaco editor once created (null when gone), for callers that need its model.
 */
import { useEffect, useRef } from "react";
import { monaco } from "./monaco";
import "./editor.css";

export interface EditorMarker {
  line: number;
  column?: number;
  endLine?: number;
  endColumn?: number;
  message: string;
  severity?: "error" | "warning";
}

export interface CodeEditorProps {
  language: "typescript" | "yaml";
  value: string;
  onChange?: (value: string) => void;
  markers?: EditorMarker[];
  height?: string;
  readOnly?: boolean;
  testId?: string;
  path?: string;
  onEditor?: (editor: monaco.editor.IStandaloneCodeEditor | null) => void;
}

const MARKER_OWNER = "console";
let anonymousModels = 0;

export function CodeEditor({ language, value, onChange, markers, height = "400px", readOnly = false, testId, path, onEditor }: CodeEditorProps) {
  const container = useRef<HTMLDivElement>(null);
  const editorRef = useRef<monaco.editor.IStandaloneCodeEditor | null>(null);
  // The latest callbacks, read by listeners registered once.
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  const onEditorRef = useRef(onEditor);
  onEditorRef.current = onEditor;

  useEffect(() => {
    const uri = monaco.Uri.parse(`file:///${path ?? `editor-${++anonymousModels}.${language === "typescript" ? "ts" : "yaml"}`}`);
    monaco.editor.getModel(uri)?.dispose();
    const model = monaco.editor.createModel(value, language, uri);
    const editor = monaco.editor.create(container.current!, {
      model,
      readOnly,
      automaticLayout: true,
      minimap: { enabled: false },
      scrollBeyondLastLine: false,
      fontSize: 13,
      tabSize: 2,
      fixedOverflowWidgets: true,
    });
    editorRef.current = editor;
    const listener = model.onDidChangeContent(() => onChangeRef.current?.(model.getValue()));
    onEditorRef.current?.(editor);
    return () => {
      onEditorRef.current?.(null);
      listener.dispose();
      editor.dispose();
      model.dispose();
      editorRef.current = null;
    };
    // A new file or language is a new model; the value is synchronised by the effect below.
  }, [language, path]);

  useEffect(() => {
    const model = editorRef.current?.getModel();
    if (model && model.getValue() !== value) {
      model.pushEditOperations([], [{ range: model.getFullModelRange(), text: value }], () => null);
    }
  }, [value]);

  useEffect(() => {
    editorRef.current?.updateOptions({ readOnly });
  }, [readOnly]);

  useEffect(() => {
    const model = editorRef.current?.getModel();
    if (!model) return;
    monaco.editor.setModelMarkers(
      model,
      MARKER_OWNER,
      (markers ?? []).map((marker) => {
        const line = Math.min(Math.max(1, marker.line), model.getLineCount());
        return {
          severity: marker.severity === "warning" ? monaco.MarkerSeverity.Warning : monaco.MarkerSeverity.Error,
          message: marker.message,
          startLineNumber: line,
          startColumn: marker.column ?? 1,
          endLineNumber: marker.endLine ?? line,
          endColumn: marker.endColumn ?? (marker.column !== undefined ? marker.column + 1 : model.getLineMaxColumn(line)),
        };
      }),
    );
  }, [markers, language, path]);

  return <div ref={container} className="code-editor" style={{ height, minHeight: 120 }} data-testid={testId} />;
}

export default CodeEditor;
