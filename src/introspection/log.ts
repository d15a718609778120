/**
 * How the introspection code reports what happens on a connection (no console output in
 * library code: the caller decides where messages go).
 */
export type IntrospectionLogLevel = 'info' | 'warning' | 'error';

export type IntrospectionLog = (level: IntrospectionLogLevel, message: string) => void;

export const silentLog: IntrospectionLog = () => undefined;
