package settlement

// The estimation methods of settlement/README.md "Methods, in order", as
// run_estimates, estimates.parquet and the API name them (the keys of
// EstimateCounts).
const (
	MethodLinear  = "LIN"
	MethodLikeDay = "LDY"
	MethodZero    = "ZER"
)

// EstimateMethods are the methods in the order settlement/README.md "Estimation
// of missing reads (VEE)" tries them.
var EstimateMethods = []string{MethodLinear, MethodLikeDay, MethodZero}
