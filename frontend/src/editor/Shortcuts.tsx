/** The keyboard shortcuts, shown with "?". */
import { Modal } from "../ui/Modal";
import { isMac } from "../util/keys";

const MOD = isMac ? "⌘" : "Ctrl";

export const SHORTCUTS: [string, string][] = [
  [`${MOD}+S`, "Save (with a message)"],
  [`${MOD}+Z`, "Undo"],
  [`${MOD}+Y  /  ${MOD}+Shift+Z`, "Redo"],
  [`${MOD}+C  /  ${MOD}+X  /  ${MOD}+V`, "Copy, cut, paste (as JSON: works across flows and tabs)"],
  [`${MOD}+A`, "Select everything"],
  [`${MOD}+G`, "Group the selection in a frame"],
  ["Delete  /  Backspace", "Delete the selection"],
  ["Tab  /  /", "Add a node at the cursor (wired from the selected node)"],
  ["Double-click the canvas", "Add a node there"],
  ["Drag a wire into empty space", "Add a node that takes it"],
  ["F", "Fit the flow to the screen"],
  ["Shift+drag  /  Shift+click", "Select several nodes"],
  ["Scroll  /  middle-drag  /  Space+drag", "Pan"],
  [`${MOD}+scroll  /  pinch`, "Zoom"],
  ["Escape", "Clear the selection"],
  ["?", "This list"],
];

export function ShortcutsDialog({ onClose }: { onClose: () => void }) {
  return (
    <Modal title="Keyboard shortcuts" onClose={onClose} testId="shortcuts">
      <table className="shortcuts">
        <tbody>
          {SHORTCUTS.map(([keys, what]) => (
            <tr key={keys}>
              <td>
                {keys.split("  /  ").map((k, i) => (
                  <span key={k}>
                    {i > 0 ? " or " : ""}
                    <kbd>{k}</kbd>
                  </span>
                ))}
              </td>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Modal>
  );
}
