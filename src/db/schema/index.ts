export * from "./tenancy";
export * from "./contacts";
export * from "./tags";
export * from "./events";
export * from "./audit";
export * from "./wecom";
export * from "./segments";
export * from "./rules";
