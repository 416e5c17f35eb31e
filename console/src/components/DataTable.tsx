import type { ReactNode } from "react";

export interface Column<T> {
  header: ReactNode;
  render(row: T): ReactNode;
  className?: string;
}

/** A dense table of rows; a row with `onRowClick` is a link to its item. */
export function DataTable<T>({
  columns,
  rows,
  rowKey,
  onRowClick,
  empty = "Nothing here yet.",
  testId,
  rowTestId,
}: {
  columns: Column<T>[];
  rows: T[];
  rowKey(row: T): string;
  onRowClick?(row: T): void;
  empty?: ReactNode;
  testId?: string;
  rowTestId?(row: T): string;
}) {
  if (rows.length === 0) return <p className="empty" data-testid={testId}>{empty}</p>;
  return (
    <table className="data-table" data-testid={testId}>
      <thead>
        <tr>
          {columns.map((column, index) => (
            <th key={index} className={column.className}>
              {column.header}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr
            key={rowKey(row)}
            className={onRowClick ? "clickable" : undefined}
            onClick={onRowClick ? () => onRowClick(row) : undefined}
            data-testid={rowTestId?.(row)}
          >
            {columns.map((column, index) => (
              <td key={index} className={column.className}>
                {column.render(row)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
