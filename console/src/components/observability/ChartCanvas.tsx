/**
 * One Chart.js chart in a React component. Only the controllers, elements and scales the console draws are
 * registered (Chart.js 4 tree-shakes the rest away); a change of data or options updates the chart in place.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartData,
  type ChartOptions,
  type ChartType,
} from "chart.js";
import { useEffect, useRef, type ReactNode } from "react";

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Tooltip, Legend, Filler);

export const PALETTE = ["#4a6cd4", "#e0684b", "#2e9e6b", "#b57bd8", "#d9a21b", "#3aa6b9", "#8a8f9c"];

export function ChartCanvas<T extends ChartType>({
  name,
  type,
  data,
  options,
  height = 240,
  empty,
}: {
  /** `data-testid="metrics-chart-<name>"` on the container. */
  name: string;
  type: T;
  data: ChartData<T>;
  options?: ChartOptions<T>;
  height?: number;
  /** Shown instead of the chart when set (no data in the range). */
  empty?: ReactNode;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<T> | null>(null);

  useEffect(() => {
    if (empty || !canvas.current) return;
    const created = new Chart<T>(canvas.current, {
      type,
      data,
      options: { responsive: true, maintainAspectRatio: false, animation: false, ...options } as ChartOptions<T>,
    });
    chart.current = created;
    return () => {
      created.destroy();
      chart.current = null;
    };
    // The chart is made once per type; data and options are applied below.
  }, [type, Boolean(empty)]);

  useEffect(() => {
    const current = chart.current;
    if (!current) return;
    current.data = data;
    current.options = { responsive: true, maintainAspectRatio: false, animation: false, ...options } as ChartOptions<T>;
    current.update();
  }, [data, options]);

  return (
    <div className="metrics-chart" data-testid={`metrics-chart-${name}`} data-empty={empty ? "true" : "false"} style={{ height }}>
      {empty ? <p className="empty metrics-empty">{empty}</p> : <canvas ref={canvas} />}
    </div>
  );
}
