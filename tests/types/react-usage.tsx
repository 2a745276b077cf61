// Type-level test of ferry-client/react's declarations (npm run typecheck): how an app uses them.
import { connect, FerryError, type FerryClient } from "ferry-client";
import { FerryProvider, useFerry, useRequest, useStream, type RequestStatus } from "ferry-client/react";

type Summary = { narrative: string };
type Progress = { pct: number };

function PatientSummary({ patientId }: { patientId: number }) {
  const { data, error, progress, status, cancel } = useRequest<Summary, Progress>(
    "patient_summary_request",
    { patientId },
    { timeoutMs: 300_000, idleTimeoutMs: 30_000 },
  );
  const s: RequestStatus = status;
  const text: string | undefined = data?.narrative;
  const pct: number | undefined = progress?.pct;
  const code: string | undefined = error?.code;
  // @ts-expect-error: the reply type has no "total"
  console.log(data?.total);
  return (
    <p onClick={cancel}>
      {s} {text} {pct} {code}
    </p>
  );
}

function Job() {
  const { parts, data } = useStream<{ done: boolean }, Progress>("jobs", {}, { enabled: true });
  const [client, failed] = useFerry();
  const c: FerryClient | undefined = client;
  const f: FerryError | undefined = failed;
  const idle = useRequest(null);
  return (
    <ul>
      {parts.map((p, i) => (
        <li key={i}>{p.kind === "progress" ? p.value.pct : String(p.value.done)}</li>
      ))}
      {String(data?.done)} {String(c)} {String(f)} {idle.status}
    </ul>
  );
}

export function App() {
  const client = connect("ws://localhost:8080/ws");
  return (
    <FerryProvider client={client}>
      <PatientSummary patientId={42} />
      <Job />
    </FerryProvider>
  );
}
