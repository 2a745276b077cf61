// The patient directory the dashboard lists. In a real app this would come from another API;
// the summaries themselves come from the AMQP worker through Ferry.

/** @type {{ id: number, name: string, unknown?: boolean }[]} */
export const PATIENTS = [
  { id: 1, name: "Ada Okafor" },
  { id: 2, name: "Bruno Lindqvist" },
  { id: 3, name: "Chiara Rossi" },
  { id: 4, name: "Dmitri Volkov" },
  { id: 5, name: "Esther Mensah" },
  { id: 6, name: "Farid Haddad" },
  { id: 7, name: "Grace Nakamura" },
  { id: 8, name: "Hugo Lefèvre" },
  { id: 9, name: "Ingrid Solberg" },
  { id: 10, name: "Jamal Carter" },
  { id: 11, name: "Keiko Tanaka" },
  { id: 12, name: "Lucía Fernández" },
  // Not in the worker's records: shows what an error reply looks like.
  { id: 99, name: "Unknown patient", unknown: true },
];
